import { errorMessage } from '../../core/errors.ts';
import { releaseSlot } from '../formation/join-slots.ts';
import { endLeaseOf } from '../formation/lease.ts';
import { ClusterApiError } from '../kubernetes/cluster-api.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState, NodeState } from '../store/state.ts';

/**
 * Revokes everything minted for a node, inside a state mutation: its tokens, its join slot, its
 * lease (before init), the init token of that lease; its registration is cleared (the VM is gone
 * or untrusted: a replacement may register the name with its own UUID). Answers the revoked
 * token ids and the id of its last kubeadm join token, whose Secret the caller deletes.
 */
export function revokeNode(cluster: ClusterState, node: NodeState, now: number): { jtis: string[]; joinTokenId?: string } {
  const jtis = node.tokens.map((t) => t.jti);
  for (const t of node.tokens) cluster.revokedTokens[t.jti] = t.expiresAt;
  node.tokens = [];
  node.revokedAt = now;
  node.registration = undefined;
  node.granted = undefined;
  const joinTokenId = node.joinTokenId;
  node.joinTokenId = undefined;
  releaseSlot(cluster, node.name);
  endLeaseOf(cluster, node.name);
  if (cluster.initToken?.node === node.name) cluster.initToken = undefined;
  return { jtis, joinTokenId };
}

/** Best effort: the token also expires on its own (bootstrapTokenTtlSeconds); a failure is logged for the operator. */
export async function deleteJoinToken(cluster: ClusterState, id: string, runtime: ControllerRuntime): Promise<void> {
  try {
    await (await runtime.clusterApi(cluster.id))?.deleteBootstrapTokenSecret(id);
    runtime.log.info('join.token.deleted', { cluster: cluster.id, bootstrapId: id });
  } catch (error) {
    runtime.log.warn('join.token.delete-failed', {
      cluster: cluster.id,
      bootstrapId: id,
      error: errorMessage(error),
      answer: error instanceof ClusterApiError ? error.detail : undefined,
    });
  }
}
