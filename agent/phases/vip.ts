import { registeredNode } from '../journal/phase-outputs.ts';
import { applyKeepalived, type KeepalivedState } from '../vip/apply-keepalived.ts';
import type { Phase } from './phase.ts';

/**
 * The API server VIP on every control-plane node, a single one included. After init or join,
 * so that a node's keepalived starts once its own API server can pass the health check; on the
 * leader kube-init brought keepalived up already (kubeadm init needs the VIP), and this run
 * picks up the control-plane nodes that registered meanwhile.
 */
export const vipPhase: Phase<KeepalivedState> = {
  name: 'vip',
  summary: 'keepalived holds the API server VIP; peers are the other control-plane nodes',
  needs: ['register', 'elect', 'kube-init', 'kube-join'],
  appliesTo: ({ config }) => config.role === 'master',
  run: async ({ config, host, log, controller, outputs }) =>
    applyKeepalived(host, log, {
      endpoint: config.controlPlaneEndpoint,
      node: registeredNode(outputs, 'vip'),
      isLeader: outputs.elect?.leader === true,
      view: await controller.controlPlane(),
      beforeInit: false,
    }),
};
