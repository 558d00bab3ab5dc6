import type { ClusterState, JoinSlot } from '../store/state.ts';

/**
 * The one control-plane join slot of a cluster: etcd takes one learner at a time, so
 * control-plane nodes join one after another. A slot is held until its holder reports joined
 * (its kubeadm join is done: the new etcd member is in) or its lease (joinSlotTtlSeconds) runs
 * out, whichever comes first.
 */

/** The live slot, or undefined when the slot is free. */
export function liveSlot(cluster: ClusterState, now: number): JoinSlot | undefined {
  const slot = cluster.joinSlot;
  if (!slot || now >= slot.expiresAt) return undefined;
  if (cluster.nodes[slot.holder]?.joinedAt !== undefined) return undefined;
  return slot;
}

/**
 * Gives the slot to `node` if it is free, or returns it if `node` already holds it (a rerun
 * keeps the slot's original expiry); undefined when another node holds it. Mutates the state.
 */
export function takeSlot(cluster: ClusterState, node: string, now: number): JoinSlot | undefined {
  const slot = liveSlot(cluster, now);
  if (slot) return slot.holder === node ? slot : undefined;
  cluster.joinSlot = { holder: node, expiresAt: now + cluster.spec.joinSlotTtlSeconds * 1000 };
  return cluster.joinSlot;
}

/** Frees the slot if `node` holds it. */
export function releaseSlot(cluster: ClusterState, node: string): void {
  if (cluster.joinSlot?.holder === node) cluster.joinSlot = undefined;
}

export function slotDeadline(cluster: ClusterState, now: number): number | undefined {
  return liveSlot(cluster, now)?.expiresAt;
}
