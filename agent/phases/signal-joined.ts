import { PkeError } from '../core/errors.ts';
import { ADMIN_KUBECONFIG } from '../kube/paths.ts';
import type { SignalJoinedOutput } from '../journal/phase-outputs.ts';
import type { Phase } from './phase.ts';

/**
 * Reported as soon as kubeadm init or join is done, not when the node is ready: the leader's
 * report opens the joins, and a control-plane node's report hands the join slot to the next,
 * so that nobody waits on the add-ons or on another node's kubelet.
 */
export const signalJoinedPhase: Phase<SignalJoinedOutput> = {
  name: 'signal-joined',
  summary:
    'Tell the controller this node is in the cluster: the leader hands over admin.conf and opens the joins; a control-plane node frees the join slot',
  needs: ['kube-init', 'kube-join'],
  run: async (ctx) => {
    const elect = ctx.outputs.elect;
    if (elect?.leader !== true) {
      await ctx.controller.joined({});
      return { joinedAt: new Date().toISOString() };
    }
    const adminKubeconfig = await ctx.host.readText(ADMIN_KUBECONFIG);
    if (adminKubeconfig === undefined) throw new PkeError(`signal-joined: the leader has no ${ADMIN_KUBECONFIG} to hand to the controller`);
    await ctx.controller.joined({ adminKubeconfig, epoch: elect.epoch });
    // The cluster is initialized: from now on the controller never ends the lease.
    ctx.lease.release();
    return { joinedAt: new Date().toISOString() };
  },
};
