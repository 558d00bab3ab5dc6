import { isTransientKubeadmError } from '../../kube/kubeadm.ts';
import { kubeadmUpgrade } from '../../kube/kubeadm-upgrade.ts';
import { stagedBinary } from '../../kube/staged-release.ts';
import type { Phase } from '../phase.ts';
import { turnOutput, type UpgradeInputs } from './inputs.ts';

/** `kubeadm upgrade apply` on the first control-plane node, `kubeadm upgrade node` on the others, with the new kubeadm. */
export function upgradeKubeadmPhase({ to }: UpgradeInputs): Phase<{ mode: 'apply' | 'node' }> {
  return {
    name: 'upgrade-kubeadm',
    summary: `kubeadm upgrade apply (first control-plane node) or node (the others), with kubeadm v${to}`,
    needs: ['upgrade-vip-off'],
    run: async ({ config, host, log, outputs, signal }) => {
      const { mode } = turnOutput(outputs, 'upgrade-kubeadm');
      await kubeadmUpgrade(host, {
        kubeadm: host.file(stagedBinary(to, 'kubeadm')),
        version: to,
        mode,
        ignorePreflightErrors: [
          ...(config.kubernetes.allowCgroupV1 ? ['SystemVerification'] : []),
          // kubeadm checks the CoreDNS it would upgrade, and fails where the cluster runs none.
          ...(config.addons.coreDns ? [] : ['CoreDNSUnsupportedPlugins', 'CoreDNSMigration']),
        ],
        log,
        signal,
      });
      return { mode };
    },
    retry: { attempts: 3, initialDelayMs: 2_000, maxDelayMs: 10_000, retryable: isTransientKubeadmError },
  };
}
