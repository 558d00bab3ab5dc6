import { setTimeout as sleep } from 'node:timers/promises';
import { CLUSTER_CA_CERT } from '../../kube/paths.ts';
import { probeHttps } from '../../net/https-probe.ts';
import type { Phase } from '../phase.ts';
import type { UpgradeInputs } from './inputs.ts';

/** How long the VIP may take to answer from another control-plane node once this one lets it go. */
const HANDOVER_TIMEOUT_MS = 15_000;

const CONTROL_PLANE_ONLY = { appliesTo: ({ config }: { config: { role: string } }) => config.role === 'master' };

/**
 * Before kubeadm restarts this node's etcd and API server, its keepalived stops: stopping, it
 * advertises priority 0, and a peer takes the VIP at once, while this node's API server still
 * answers. Left to the track script, the VIP would move only after the restarted API server
 * failed its checks. A cluster with one control-plane node keeps it (nobody could take it).
 */
export function upgradeVipOffPhase(_: UpgradeInputs): Phase<{ released: boolean }> {
  return {
    name: 'upgrade-vip-off',
    summary: 'Control plane: keepalived stops, so that a peer holds the VIP while this node is upgraded',
    needs: ['upgrade-drain'],
    ...CONTROL_PLANE_ONLY,
    run: async ({ config, controller, host, log, signal }) => {
      const view = await controller.controlPlane();
      if (view.nodes.length < 2) {
        log.info('upgrade.vip-kept', { reason: 'no other control-plane node to hold the VIP' });
        return { released: false };
      }
      await host.service.stop('keepalived');
      const { vip, port } = config.controlPlaneEndpoint;
      const ca = await host.readText(CLUSTER_CA_CERT);
      const deadline = Date.now() + HANDOVER_TIMEOUT_MS;
      for (;;) {
        const answer = await probeHttps(`https://${vip}:${port}/livez`, { ca, timeoutMs: 1000 });
        if (answer.ok) break;
        if (Date.now() > deadline) {
          log.warn('upgrade.vip-handover-slow', { detail: answer.detail });
          break;
        }
        await sleep(200, undefined, { signal });
      }
      return { released: true };
    },
  };
}

/** keepalived starts again once this node runs the new version and is Ready. */
export function upgradeVipOnPhase(_: UpgradeInputs): Phase {
  return {
    name: 'upgrade-vip-on',
    summary: 'Control plane: keepalived starts again (the node takes its part in the VIP back)',
    needs: ['upgrade-kubelet'],
    ...CONTROL_PLANE_ONLY,
    run: async ({ host, outputs }) => {
      const off = outputs['upgrade-vip-off'] as { released?: boolean } | undefined;
      if (off?.released) await host.service.start('keepalived');
    },
  };
}
