import { PkeError } from '../core/errors.ts';
import type { Phase } from './phase.ts';

export const signalReadyPhase: Phase = {
  name: 'signal-ready',
  summary: 'Tell the controller this node is ready; the leader hands over admin.conf for token minting',
  needs: ['wait-ready'],
  run: async (ctx) => {
    const leader = ctx.outputs.elect?.leader === true;
    let adminKubeconfig: string | undefined;
    if (leader) {
      adminKubeconfig = await ctx.host.readText('/etc/kubernetes/admin.conf');
      if (adminKubeconfig === undefined) throw new PkeError('signal-ready: the leader has no /etc/kubernetes/admin.conf to hand to the controller');
    }
    await ctx.controller.ready(adminKubeconfig === undefined ? {} : { adminKubeconfig });
    ctx.lease.release();
    return undefined;
  },
};
