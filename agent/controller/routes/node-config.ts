import { CONTROL_PLANE_POOL, type NodeConfigRequest } from '../../protocol/api.ts';
import { API } from '../../protocol/routes.ts';
import { deleteJoinToken, revokeNode } from '../auth/revoke-node.ts';
import { badRequest, conflict, notFound } from '../http/problem.ts';
import { encodedSize, renderGuestinfo } from '../node-config/guestinfo.ts';
import { bind } from '../http/route.ts';
import type { ClusterState, NodeState } from '../store/state.ts';

/** Node configs (admin): mint a node token and render the node's guestinfo; revoke tokens. */

export const nodeConfigRoute = bind(API.nodeConfig, async ({ cluster, body, runtime }) => {
  const pool = nodePool(cluster, body);
  assertSameIdentity(cluster.nodes[body.name], body.role, pool);
  const ttlSeconds = body.tokenTtlSeconds ?? cluster.spec.nodeTokenTtlSeconds;
  const minted = await runtime.tokens.mintNodeToken({ cluster: cluster.id, node: body.name, role: body.role, pool, ttlSeconds });
  runtime.store.mutate((_, touch) => {
    const now = Date.now();
    const existing = cluster.nodes[body.name];
    // Checked again: another request may have claimed the name while the token was signed.
    assertSameIdentity(existing, body.role, pool);
    // A revoked name starts over: it may come back as another role, on another VM.
    const node: NodeState =
      existing && existing.revokedAt === undefined ? existing : { name: body.name, role: body.role, pool, tokens: [] };
    node.tokens = [...node.tokens.filter((t) => t.expiresAt > now), { jti: minted.jti, expiresAt: minted.expiresAt }];
    cluster.nodes[body.name] = node;
    pruneRevocations(cluster, now);
    touch.node(cluster.id, body.name);
    touch.cluster(cluster.id);
  });
  const guestinfo = renderGuestinfo({
    cluster: { id: cluster.id, name: cluster.name, spec: cluster.spec },
    node: body.name,
    role: body.role,
    pool,
    controller: {
      url: runtime.advertiseUrl,
      ...(runtime.peerUrls.length > 0 ? { otherUrls: runtime.peerUrls } : {}),
      caCert: runtime.caCertPem,
      token: minted.token,
    },
  });
  runtime.log.info('node.config', { cluster: cluster.id, node: body.name, role: body.role, pool, jti: minted.jti });
  return {
    cluster: { id: cluster.id, name: cluster.name },
    node: body.name,
    role: body.role,
    pool,
    tokenId: minted.jti,
    tokenExpiresAt: new Date(minted.expiresAt).toISOString(),
    guestinfo,
    encodedBytes: encodedSize(guestinfo),
  };
});

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

function nodePool(cluster: ClusterState, request: NodeConfigRequest): string {
  if (request.role === 'master') {
    if (request.pool !== undefined && request.pool !== CONTROL_PLANE_POOL)
      throw badRequest(`control-plane nodes have no worker pool; leave pool out`, 'pool');
    return CONTROL_PLANE_POOL;
  }
  const pools = cluster.spec.pools.map((p) => p.name);
  const pool = request.pool ?? pools[0];
  if (pool === undefined) throw badRequest(`cluster ${cluster.id} has no worker pools`, 'pool');
  if (!pools.includes(pool)) throw badRequest(`cluster ${cluster.id} has no pool ${pool}; its pools: ${pools.join(', ')}`, 'pool');
  return pool;
}

function assertSameIdentity(node: NodeState | undefined, role: NodeState['role'], pool: string): void {
  if (node && node.revokedAt === undefined && (node.role !== role || node.pool !== pool)) {
    throw conflict(`node ${node.name} is already a ${node.role} in pool ${node.pool}; pick another name, or revoke it first`);
  }
}

/** Revocations are kept only until the token would have expired anyway. */
function pruneRevocations(cluster: ClusterState, now: number): void {
  for (const [jti, expiresAt] of Object.entries(cluster.revokedTokens)) {
    if (expiresAt <= now) delete cluster.revokedTokens[jti];
  }
}
