import { PkeError } from '../core/errors.ts';
import type { ElectOutput } from '../journal/phase-outputs.ts';
import { initDoneEvidence } from '../kube/init-marker.ts';
import type { LeaderClaimResponse } from '../protocol/api.ts';
import { ControllerRequestError } from '../protocol/errors.ts';
import type { Phase, PhaseContext } from './phase.ts';
import { stepDownBeforeInit } from './step-down.ts';

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
      const state = await ctx.controller.leaderState({
        waitSeconds: LONG_POLL_SECONDS,
        known: { epoch: answer.epoch, initialized: answer.initialized },
      });
      if (state.initialized) {
        ctx.log.info('elect.follower', { leader: state.holder, epoch: state.epoch });
        return { leader: false };
      }
    }
    throw new PkeError(`elect: no leader initialized the cluster within ${ELECTION_DEADLINE_MS / 60000} minutes`);
  },
  resume: resumeLeadership,
};

/**
 * A rerun of a node that won the election: keep renewing its lease; or, when the lease ended
 * while the node was down and init had not finished, step down (undo the init it began, stop
 * its keepalived) and take part in the election again (someone else may lead now; this node
 * then joins). Once the leader's joined report is in, the lease no longer ends.
 */
async function resumeLeadership({ host, log, controller, lease, outputs }: PhaseContext): Promise<boolean> {
  const won = outputs.elect;
  if (!won?.leader || won.epoch === undefined || outputs['signal-joined'] !== undefined) return true;
  let renewal: LeaderClaimResponse | undefined;
  try {
    renewal = await controller.claimLeader({ epoch: won.epoch });
  } catch (error) {
    if (!(error instanceof ControllerRequestError && error.code === 'fenced')) throw error;
  }
  if (renewal?.granted) {
    lease.hold(won.epoch, renewal.leaseTtlSeconds, renewal.init);
    return true;
  }
  if ((await initDoneEvidence(host)) !== undefined) {
    throw new PkeError(
      `this node initialized the cluster as leader (epoch ${won.epoch}), but its lease has ended and the controller refuses to renew it; see \`pke-agent controller status\``,
    );
  }
  log.warn('elect.fenced', { epoch: won.epoch, note: 'the lease ended while this node was down; electing again' });
  await stepDownBeforeInit(host, log);
  return false;
}
