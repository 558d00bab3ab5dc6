import type { JoinGrant } from '../../protocol/api.ts';
import { API } from '../../protocol/routes.ts';
import { bootstrapTokenSecret, generateBootstrapToken } from '../kubernetes/bootstrap-tokens.ts';
import { ClusterApiError } from '../kubernetes/cluster-api.ts';
import { errorMessage } from '../../core/errors.ts';
import { clusterEndpoint } from '../clusters/cluster-records.ts';
import { liveSlot, takeSlot } from '../formation/join-slots.ts';
import { assertEpoch, leaseHolder } from '../formation/lease.ts';
import { ApiProblem } from '../http/problem.ts';
import { bind, type HandlerContext } from '../http/route.ts';
import type { ControllerRuntime } from '../runtime.ts';
import { nodeOf } from './nodes.ts';
import type { ClusterState, JoinSlot } from '../store/state.ts';
import type { NodePrincipal } from '../auth/tokens.ts';

/**
 * Join material. The lease holder gets `init` (a token for its InitConfiguration), unless it asks
 * without its epoch once the cluster is initialized (`pke-agent restore --rejoin`). Everyone
 * else waits for the cluster to be initialized and, on control plane, for the join slot; then
 * the controller creates a fresh bootstrap token in the cluster through its API.
 */

type JoinContext = HandlerContext<typeof API.join>;

export const joinRoute = bind(API.join, async (context) => {
  const { cluster, body, principal: me } = context;
  if (body.epoch !== undefined) assertEpoch(cluster, me.node, body.epoch, Date.now());
  // Once the cluster is initialized, the leader asking without its epoch is rejoining after a restore: it joins like any other.
  const rejoining = cluster.leader.initialized && body.epoch === undefined;
  if (me.role === 'master' && leaseHolder(cluster, Date.now()) === me.node && !rejoining) return initGrant(cluster, context.runtime, me);
  const slot = await waitForTurn(context, me);
  if (me.role !== 'master') {
    await context.runtime.afterControlPlaneGrant(cluster.id);
    return mintJoinGrant(context, me, slot);
  }
  const grant = mintJoinGrant(context, me, slot);
  context.runtime.makingControlPlaneGrant(cluster.id, grant);
  return grant;
});

/** The lease holder's init material: also in its claim answer (routes/leader.ts). */
export function initGrant(cluster: ClusterState, runtime: ControllerRuntime, me: NodePrincipal): JoinGrant {
  const init = runtime.store.mutate((_, touch) => {
    const now = Date.now();
    touch.cluster(cluster.id);
    const ttl = cluster.spec.initTokenTtlSeconds;
    const { epoch } = cluster.leader;
    // The holder asking again within its lease (a rerun) gets the same token back while half its lifetime is left.
    let current = cluster.initToken;
    if (!current || current.epoch !== epoch || current.node !== me.node || current.expiresAt - now < (ttl * 1000) / 2) {
      const token = generateBootstrapToken(ttl, now);
      current = { token: token.token, expiresAt: token.expiresAt, epoch, node: me.node };
      cluster.initToken = current;
    }
    nodeOf(cluster, me).granted = 'init';
    touch.node(cluster.id, me.node);
    return current;
  });
  return { mode: 'init', ...discovery(cluster, init) };
}

/** What a node needs to find and trust the cluster with its token. */
function discovery(cluster: ClusterState, token: { token: string; expiresAt: number }) {
  return {
    token: token.token,
    tokenExpiresAt: new Date(token.expiresAt).toISOString(),
    caCertHash: cluster.caCertHash,
    endpoint: clusterEndpoint(cluster),
  };
}

/** Waits (up to `?wait=`) for an initialized cluster and, for control plane, the join slot. */
async function waitForTurn({ cluster, query, signal, runtime }: JoinContext, me: NodePrincipal): Promise<JoinSlot | undefined> {
  const deadline = Date.now() + query.wait * 1000;
  for (;;) {
    let blocked: 'not-initialized' | 'slot-busy' | undefined;
    let slot: JoinSlot | undefined;
    if (!cluster.leader.initialized) blocked = 'not-initialized';
    else if (me.role === 'master') {
      const now = Date.now();
      const held = liveSlot(cluster, now);
      if (held && held.holder !== me.node) {
        blocked = 'slot-busy';
        runtime.metrics.slotBusy(cluster.id, me.node, now);
      } else if (held) slot = held;
      else {
        slot = runtime.store.mutate((_, touch) => {
          touch.cluster(cluster.id);
          return takeSlot(cluster, me.node, now);
        });
        runtime.metrics.slotTaken(cluster.id, me.node, now);
        runtime.log.info('join.slot', { cluster: cluster.id, node: me.node });
        runtime.armDeadlines(cluster);
      }
    }
    if (!blocked) return slot;
    if (Date.now() >= deadline || signal.aborted) throw waitEnded(cluster, blocked, query.wait);
    if (runtime.isClosing) throw new ApiProblem(503, 'internal', 'the controller is shutting down; ask again');
    runtime.armDeadlines(cluster);
    await runtime.wakeups.next(cluster.id, deadline - Date.now(), signal);
  }
}

async function mintJoinGrant({ cluster, runtime, signal }: JoinContext, me: NodePrincipal, slot: JoinSlot | undefined): Promise<JoinGrant> {
  if (signal.aborted) throw new ApiProblem(503, 'internal', 'the client went away');
  const api = await runtime.clusterApi(cluster.id);
  if (!api)
    throw new ApiProblem(
      503,
      'cluster-api-unavailable',
      `cluster ${cluster.id} is initialized but the controller has no admin kubeconfig for it; the leader must report joined again`,
    );
  const token = generateBootstrapToken(cluster.spec.bootstrapTokenTtlSeconds);
  try {
    await api.createBootstrapTokenSecret(bootstrapTokenSecret(token, `pke-agent controller: join token for ${me.node}`));
  } catch (error) {
    runtime.log.warn('join.token.failed', {
      cluster: cluster.id,
      node: me.node,
      error: errorMessage(error),
      answer: error instanceof ClusterApiError ? error.detail : undefined,
    });
    throw new ApiProblem(
      503,
      'cluster-api-unavailable',
      `could not create the bootstrap token through the cluster API (${api.server}): ${errorMessage(error)}; retry`,
    );
  }
  runtime.store.mutate((_, touch) => {
    const record = nodeOf(cluster, me);
    record.granted = 'join';
    record.joinTokenId = token.id;
    record.joinTokenIssuedAt = Date.now();
    touch.node(cluster.id, me.node);
  });
  return {
    mode: 'join',
    ...discovery(cluster, token),
    ...(slot ? { slot: { holder: slot.holder, expiresAt: new Date(slot.expiresAt).toISOString() } } : {}),
  };
}

function waitEnded(cluster: ClusterState, blocked: 'not-initialized' | 'slot-busy', waited: number): ApiProblem {
  if (blocked === 'not-initialized') {
    const holder = leaseHolder(cluster, Date.now());
    return new ApiProblem(
      409,
      'not-initialized',
      `cluster ${cluster.id} is not initialized after ${waited} s (${holder ? `leader: ${holder}` : 'no leader yet'}); ask again`,
    );
  }
  const slot = liveSlot(cluster, Date.now());
  return new ApiProblem(
    409,
    'slot-busy',
    `the control-plane join slot of cluster ${cluster.id} is held by ${slot?.holder ?? 'another node'} until ${slot ? new Date(slot.expiresAt).toISOString() : 'it is freed'}; ask again`,
  );
}
