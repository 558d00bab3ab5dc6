import { PkeError } from '../core/errors.ts';
import type { ElectOutput } from '../journal/phase-outputs.ts';
import type { Phase } from './phase.ts';

/** How long a control-plane node waits for a leader to initialize the cluster before the phase fails. */
const ELECTION_DEADLINE_MS = 60 * 60 * 1000;
const LONG_POLL_SECONDS = 30;

export const electPhase: Phase<ElectOutput> = {
  name: 'elect',
  summary: 'Claim the leader lease: the leader runs kubeadm init, the others wait for it and join',
  needs: ['register'],
  appliesTo: (ctx) => ctx.config.role === 'master',
  run: async (ctx) => {
    const deadline = Date.now() + ELECTION_DEADLINE_MS;
    while (Date.now() < deadline) {
      ctx.signal.throwIfAborted();
      const answer = await ctx.controller.claimLeader({});
      if (answer.granted) {
        ctx.lease.hold(answer.epoch, answer.leaseTtlSeconds, answer.init);
        ctx.log.info('elect.leader', { epoch: answer.epoch, ttlSeconds: answer.leaseTtlSeconds });
        return { leader: true, epoch: answer.epoch };
      }
      if (answer.initialized) {
        ctx.log.info('elect.follower', { leader: answer.holder, epoch: answer.epoch });
        return { leader: false };
      }
      // Someone else holds a live lease: wait until its holder has initialized the cluster or the lease changes hands.
      ctx.log.info('elect.waiting', { leader: answer.holder, epoch: answer.epoch });
      const state = await ctx.controller.leaderState({ waitSeconds: LONG_POLL_SECONDS, known: { epoch: answer.epoch, initialized: answer.initialized } });
      if (state.initialized) {
        ctx.log.info('elect.follower', { leader: state.holder, epoch: state.epoch });
        return { leader: false };
      }
    }
    throw new PkeError(`elect: no leader initialized the cluster within ${ELECTION_DEADLINE_MS / 60000} minutes`);
  },
};
