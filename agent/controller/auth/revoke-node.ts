import { errorMessage } from '../../core/errors.ts';
import { releaseSlot } from '../formation/join-slots.ts';
import { endLeaseOf } from '../formation/lease.ts';
import { notFound } from '../http/problem.ts';
import { ClusterApiError } from '../kubernetes/cluster-api.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState } from '../store/state.ts';

/**
 * Revokes every token of a node by name, and all that was minted for it: its join slot, its
 * lease (before init), the init token of that lease, and its last kubeadm join token, whose
 * Secret is deleted from the cluster. Answers the revoked token ids.
 */
export async function revokeNode(runtime: ControllerRuntime, cluster: ClusterState, name: string): Promise<string[]> {
  let joinTokenId: string | undefined;
  const revoked = runtime.store.mutate((_, touch) => {
    const now = Date.now();
    const node = cluster.nodes[name];
    if (!node) throw notFound(`cluster ${cluster.id} has no node ${name}`);
    const jtis = node.tokens.map((t) => t.jti);
    for (const t of node.tokens) cluster.revokedTokens[t.jti] = t.expiresAt;
    node.tokens = [];
    node.revokedAt = now;
    // The VM is gone or untrusted: a replacement may register the name with its own UUID.
    node.registration = undefined;
    node.granted = undefined;
    joinTokenId = node.joinTokenId;
    node.joinTokenId = undefined;
    releaseSlot(cluster, node.name);
    endLeaseOf(cluster, node.name);
    if (cluster.initToken?.node === node.name) cluster.initToken = undefined;
    touch.node(cluster.id, node.name);
    touch.cluster(cluster.id);
    return jtis;
  });
  runtime.log.info('token.revoked', { cluster: cluster.id, node: name, jti: revoked.join(',') });
  runtime.changed(cluster);
  if (joinTokenId !== undefined) await deleteJoinToken(cluster, joinTokenId, runtime);
  return revoked;
}

/** Best effort: the token also expires on its own (bootstrapTokenTtlSeconds); a failure is logged for the operator. */
async function deleteJoinToken(cluster: ClusterState, id: string, runtime: ControllerRuntime): Promise<void> {
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
