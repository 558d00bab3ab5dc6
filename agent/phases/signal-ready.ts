import type { Phase } from './phase.ts';

export const signalReadyPhase: Phase = {
  name: 'signal-ready',
  summary: 'Tell the controller this node is ready',
  needs: ['signal-joined', 'wait-ready'],
  run: async (ctx) => {
    await ctx.controller.ready({});
    return undefined;
  },
};
