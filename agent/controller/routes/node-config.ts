import { API } from '../../protocol/routes.ts';
import { revokeNode } from '../auth/revoke-node.ts';
import { notFound } from '../http/problem.ts';
import { bind } from '../http/route.ts';
import { issueNodeConfig } from '../node-config/issue.ts';

/** Node configs (admin): mint a node token and render the node's guestinfo; revoke tokens. */

export const nodeConfigRoute = bind(API.nodeConfig, ({ cluster, body, runtime }) => issueNodeConfig(runtime, cluster, body));

/** Revokes node tokens by id, or every token of a node by name (revoke-node.ts says what that ends). */
export const revokeRoute = bind(API.revoke, async ({ cluster, body, runtime }) => {
  if (body.node !== undefined) return { revoked: await revokeNode(runtime, cluster, body.node) };
  const revoked = runtime.store.mutate((_, touch) => {
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
  runtime.log.info('token.revoked', { cluster: cluster.id, jti: revoked.join(',') });
  runtime.changed(cluster);
  return { revoked };
});
