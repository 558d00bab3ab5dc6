import { PkeError } from '../core/errors.ts';
import { ADMIN_KUBECONFIG } from '../kube/paths.ts';
import type { Phase } from './phase.ts';

export const signalReadyPhase: Phase = {
  name: 'signal-ready',
  summary: 'Tell the controller this node is ready; the leader hands over admin.conf for token minting',
  needs: ['wait-ready'],
  run: async (ctx) => {
    const leader = ctx.outputs.elect?.leader === true;
    let adminKubeconfig: string | undefined;
    if (leader) {
      adminKubeconfig = await ctx.host.readText(ADMIN_KUBECONFIG);
      if (adminKubeconfig === undefined) throw new PkeError(`signal-ready: the leader has no ${ADMIN_KUBECONFIG} to hand to the controller`);
    }
    await ctx.controller.ready(adminKubeconfig === undefined ? {} : { adminKubeconfig });
    ctx.lease.release();
    return undefined;
  },
};
