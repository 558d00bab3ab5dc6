import { randomInt } from 'node:crypto';
import type { ClusterSpec, ClusterSummary } from '../../protocol/api.ts';
import { virtualRouterId } from '../../vip/keepalived.ts';
import { nameRecord, ownValue } from '../../core/records.ts';
import type { ClusterState, ControllerState, NodeState } from '../store/state.ts';

/** Cluster records: ids, lookup, and the summary admins see. */

const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const SUFFIX_LENGTH = 5;

/** A DNS label: the name, a dash and five random characters (no vowels, so no accidental words). */
export function newClusterId(name: string): string {
  let suffix = '';
  for (let i = 0; i < SUFFIX_LENGTH; i += 1) suffix += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)];
  return `${name.slice(0, 63 - SUFFIX_LENGTH - 1).replace(/-+$/, '')}-${suffix}`;
}

/** By id, or by name (names are unique too). */
export function findCluster(state: Readonly<ControllerState>, idOrName: string): ClusterState | undefined {
  return ownValue(state.clusters, idOrName) ?? Object.values(state.clusters).find((c) => c.name === idOrName);
}

export function newClusterState(id: string, spec: ClusterSpec, caCertHash: string, now: number): ClusterState {
  return {
    id,
    name: spec.name,
    createdAt: now,
    spec,
    caCertHash,
    nodes: nameRecord(),
    leader: { epoch: 0, initialized: false },
    revokedTokens: nameRecord(),
  };
}

let lastRegistrationSeq = 0;

/**
 * A new registration's place in the order: microseconds since the epoch, rising within this
 * process. A clock rather than a counter kept in the cluster's record, so that registrations
 * through different controller replicas do not all write the cluster (and race) for it.
 */
export function nextRegistrationSeq(now = Date.now()): number {
  lastRegistrationSeq = Math.max(lastRegistrationSeq + 1, now * 1000);
  return lastRegistrationSeq;
}

/** Registration order, the name breaking a tie (two replicas in the same microsecond): the same everywhere. */
export function byRegistration(a: NodeState, b: NodeState): number {
  return (
    (a.registration?.seq ?? Number.MAX_SAFE_INTEGER) - (b.registration?.seq ?? Number.MAX_SAFE_INTEGER) || a.name.localeCompare(b.name)
  );
}

/** The cluster's API endpoint, `VIP:port`: where every node and the controller reach its API. */
export function clusterEndpoint(cluster: ClusterState): string {
  const { vip, port } = cluster.spec.controlPlaneEndpoint;
  return `${vip}:${port}`;
}

export function clusterSummary(cluster: ClusterState): ClusterSummary {
  return {
    id: cluster.id,
    name: cluster.name,
    createdAt: new Date(cluster.createdAt).toISOString(),
    spec: cluster.spec,
    caCertHash: cluster.caCertHash,
    virtualRouterId: virtualRouterId(cluster.id),
    nodes: Object.keys(cluster.nodes).length,
    initialized: cluster.leader.initialized,
  };
}
