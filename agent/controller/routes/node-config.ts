import { API } from '../../protocol/routes.ts';
import { deleteJoinToken, revokeNode } from '../auth/revoke-node.ts';
import { notFound } from '../http/problem.ts';
import { bind } from '../http/route.ts';
import { issueNodeConfig } from '../node-config/issue.ts';

/** Node configs (admin): mint a node token and render the node's guestinfo (node-config/issue.ts); revoke tokens. */

export const nodeConfigRoute = bind(API.nodeConfig, ({ cluster, body, runtime }) => issueNodeConfig(runtime, cluster, body));

/**
 * Revokes node tokens by id, or every token of a node by name. A node revoked by name loses
 * all that was minted for it: its join slot, its lease (before init), the init token of that
 * lease, and its last kubeadm join token, whose Secret is deleted from the cluster.
 */
export const revokeRoute = bind(API.revoke, async ({ cluster, body, runtime }) => {
  let joinTokenId: string | undefined;
  const revoked = runtime.store.mutate((_, touch) => {
    const now = Date.now();
    if (body.node !== undefined) {
      const node = cluster.nodes[body.node];
      if (!node) throw notFound(`cluster ${cluster.id} has no node ${body.node}`);
      const revoked = revokeNode(cluster, node, now);
      joinTokenId = revoked.joinTokenId;
      touch.node(cluster.id, node.name);
      touch.cluster(cluster.id);
      return revoked.jtis;
    }
    const jti = body.jti ?? '';
    const owner = Object.values(cluster.nodes).find((n) => n.tokens.some((t) => t.jti === jti));
    const token = owner?.tokens.find((t) => t.jti === jti);
    if (!owner || !token) throw notFound(`cluster ${cluster.id} has no live token with jti ${jti}`);
    cluster.revokedTokens[jti] = token.expiresAt;
    owner.tokens = owner.tokens.filter((t) => t.jti !== jti);
    touch.node(cluster.id, owner.name);
    touch.cluster(cluster.id);
    return [jti];
  });
  runtime.log.info('token.revoked', { cluster: cluster.id, node: body.node, jti: revoked.join(',') });
  runtime.changed(cluster);
  if (joinTokenId !== undefined) await deleteJoinToken(cluster, joinTokenId, runtime);
  return { revoked };
});
