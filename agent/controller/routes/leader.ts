import type { LeaderClaimResponse } from '../../protocol/api.ts';
import { API } from '../../protocol/routes.ts';
import { claimLease, leaderView } from '../formation/lease.ts';
import { ApiProblem } from '../http/problem.ts';
import { initGrant } from './join.ts';
import { bind } from '../http/route.ts';

/** The leader lease: claim or renew it, and long-poll its state. */

export const claimLeaderRoute = bind(API.claimLeader, ({ cluster, principal: me, body, runtime }) => {
  const before = cluster.leader.epoch;
  const { granted } = runtime.store.mutate((_, touch) => {
    touch.cluster(cluster.id);
    return claimLease(cluster, me.node, body.epoch, Date.now());
  });
  if (cluster.leader.epoch !== before)
    runtime.log.info('leader.elected', { cluster: cluster.id, node: me.node, epoch: cluster.leader.epoch });
  runtime.changed(cluster);
  const answer: LeaderClaimResponse = { ...leaderView(cluster, Date.now()), granted };
  if (granted && !cluster.leader.initialized) answer.init = initGrant(cluster, runtime, me);
  return answer;
});

export const leaderStateRoute = bind(API.leaderState, async ({ cluster, query, signal, runtime }) => {
  const deadline = Date.now() + query.wait * 1000;
  const known =
    query.epoch === undefined && query.initialized === undefined
      ? undefined
      : { epoch: query.epoch ?? 0, initialized: query.initialized ?? false };
  for (;;) {
    const view = leaderView(cluster, Date.now());
    const differs = !known || view.epoch !== known.epoch || view.initialized !== known.initialized || view.holder === undefined;
    if (differs || Date.now() >= deadline || signal.aborted) return view;
    if (runtime.isClosing) throw new ApiProblem(503, 'internal', 'the controller is shutting down; ask again');
    runtime.armDeadlines(cluster);
    await runtime.wakeups.next(cluster.id, deadline - Date.now(), signal);
  }
});
