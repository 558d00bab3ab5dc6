import type { LeaderState } from '../../protocol/api.ts';
import { clusterEndpoint } from '../clusters/cluster-records.ts';
import { ApiProblem } from '../http/problem.ts';
import type { ClusterState } from '../store/state.ts';

/**
 * The leader lease of one cluster, as pure functions over its state. A lease has a holder, an
 * absolute expiry and an epoch that grows with every new lease. The holder renews it (claim
 * with its epoch) until it reports the cluster initialized (its kubeadm init done); from then
 * on it never expires, since a cluster is initialized once and a second init elsewhere would
 * make a second cluster. A request that carries the epoch of a lease that has ended is fenced.
 */

/** The holder of a live lease, or undefined. */
export function leaseHolder(cluster: ClusterState, now: number): string | undefined {
  const { holder, initialized, expiresAt } = cluster.leader;
  if (holder === undefined) return undefined;
  return initialized || (expiresAt !== undefined && now < expiresAt) ? holder : undefined;
}

/** Claims (no epoch) or renews (the holder's epoch) the lease; mutates the cluster's state. */
export function claimLease(cluster: ClusterState, node: string, epoch: number | undefined, now: number): { granted: boolean } {
  const leader = cluster.leader;
  const holder = leaseHolder(cluster, now);
  if (epoch !== undefined) {
    assertEpoch(cluster, node, epoch, now);
    if (!leader.initialized) leader.expiresAt = now + cluster.spec.leaseTtlSeconds * 1000;
    return { granted: true };
  }
  if (holder !== undefined) {
    // The holder asking again without its epoch (a rerun) keeps its lease.
    if (holder === node && !leader.initialized) leader.expiresAt = now + cluster.spec.leaseTtlSeconds * 1000;
    return { granted: holder === node };
  }
  leader.epoch += 1;
  leader.holder = node;
  leader.expiresAt = now + cluster.spec.leaseTtlSeconds * 1000;
  return { granted: true };
}

/** Throws 409 `fenced` unless `node` holds the live lease of `epoch`. */
export function assertEpoch(cluster: ClusterState, node: string, epoch: number, now: number): void {
  if (epoch === cluster.leader.epoch && leaseHolder(cluster, now) === node) return;
  throw fenced(cluster, node, epoch, now);
}

export function fenced(cluster: ClusterState, node: string, epoch: number, now: number): ApiProblem {
  const holder = leaseHolder(cluster, now);
  const current = holder === undefined ? 'no live lease' : `epoch ${cluster.leader.epoch} held by ${holder}`;
  return new ApiProblem(409, 'fenced', `the lease of epoch ${epoch} has ended for ${node} (now: ${current}); claim again`);
}

/**
 * Ends the lease of `node` (revoked) unless the cluster is initialized: a lease that ends after
 * init would let a second node run kubeadm init. The epoch stays; the next claim starts a new one.
 */
export function endLeaseOf(cluster: ClusterState, node: string): void {
  if (cluster.leader.holder !== node || cluster.leader.initialized) return;
  cluster.leader.holder = undefined;
  cluster.leader.expiresAt = undefined;
}

/** The holder reported its kubeadm init done: the lease stops expiring and the joins open. */
export function markInitialized(cluster: ClusterState, now: number): void {
  cluster.leader.initialized = true;
  cluster.leader.initializedAt ??= now;
  cluster.leader.expiresAt = undefined;
}

export function leaderView(cluster: ClusterState, now: number): LeaderState {
  const holder = leaseHolder(cluster, now);
  return {
    holder,
    epoch: cluster.leader.epoch,
    leaseExpiresAt:
      holder !== undefined && !cluster.leader.initialized && cluster.leader.expiresAt !== undefined
        ? new Date(cluster.leader.expiresAt).toISOString()
        : undefined,
    leaseTtlSeconds: cluster.spec.leaseTtlSeconds,
    initialized: cluster.leader.initialized,
    endpoint: clusterEndpoint(cluster),
  };
}

/** The instant the current lease ends, if it can end (a live lease of a cluster not yet initialized). */
export function leaseDeadline(cluster: ClusterState, now: number): number | undefined {
  return leaseHolder(cluster, now) !== undefined && !cluster.leader.initialized ? cluster.leader.expiresAt : undefined;
}
