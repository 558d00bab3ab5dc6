import { setTimeout as sleep } from 'node:timers/promises';
import { PkeError } from '../../core/errors.ts';
import { nodeReadiness } from '../../kube/node-ready.ts';
import { ADMIN_KUBECONFIG, KUBELET_KUBECONFIG } from '../../kube/paths.ts';
import { UPGRADED_COMMANDS, stagedBinary } from '../../kube/staged-release.ts';
import type { Phase } from '../phase.ts';
import { preflightOutput, type UpgradeInputs } from './inputs.ts';

const READY_TIMEOUT_MS = 5 * 60_000;

/**
 * Installs the new kubeadm, kubelet and kubectl where the node runs them from (each a link to
 * the staged binary, replaced in one rename), restarts the kubelet, and waits until the Node is
 * Ready with its kubelet at the new version.
 */
export function upgradeKubeletPhase({ to }: UpgradeInputs): Phase<{ readyAfterMs: number }> {
  return {
    name: 'upgrade-kubelet',
    summary: `Installs kubelet, kubeadm and kubectl v${to}, restarts the kubelet, waits for the Node to be Ready on v${to}`,
    needs: ['upgrade-kubeadm'],
    run: async ({ config, host, log, outputs, signal }) => {
      const { installedDir, nodeName } = preflightOutput(outputs, 'upgrade-kubelet');
      for (const command of UPGRADED_COMMANDS) await host.link(stagedBinary(to, command), `${installedDir}/${command}`);
      await host.service.restart('kubelet');
      log.info('upgrade.kubelet-restarted', { installedDir });
      const started = Date.now();
      const readiness = await nodeReadiness(host, config.role === 'master' ? ADMIN_KUBECONFIG : KUBELET_KUBECONFIG);
      try {
        let last = '';
        while (Date.now() - started < READY_TIMEOUT_MS) {
          const answer = await readiness.check(nodeName);
          if (answer.ready && answer.kubeletVersion === `v${to}`) return { readyAfterMs: Date.now() - started };
          last = `${answer.detail}, kubelet ${answer.kubeletVersion ?? 'unknown'}`;
          await sleep(500, undefined, { signal });
        }
        throw new PkeError(`node ${nodeName} was not Ready on v${to} within ${READY_TIMEOUT_MS / 1000} s; last answer: ${last}`);
      } finally {
        await readiness.close();
      }
    },
  };
}
