import { CONTROL_PLANE_POOL, type NodeConfigRequest, type NodeConfigResponse } from '../../protocol/api.ts';
import { badRequest, conflict } from '../http/problem.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState, NodeState } from '../store/state.ts';
import { encodedSize, renderGuestinfo } from './guestinfo.ts';

/**
 * A node's config: a node token minted and recorded under the node's name, and the guestinfo
 * that carries it. `controller node-config` answers it to the admin; provisioning clones a VM
 * with it. The node token never leaves the controller otherwise.
 */
export async function issueNodeConfig(
  runtime: ControllerRuntime,
  cluster: ClusterState,
  request: NodeConfigRequest,
  /** A VM cloned from a newer template (an upgrade by rolling replacement) runs its version, not the cluster's yet. */
  options: { kubernetesVersion?: string } = {},
): Promise<NodeConfigResponse> {
  const pool = nodePool(cluster, request);
  assertSameIdentity(cluster.nodes[request.name], request.role, pool);
  const ttlSeconds = request.tokenTtlSeconds ?? cluster.spec.nodeTokenTtlSeconds;
  const minted = await runtime.tokens.mintNodeToken({ cluster: cluster.id, node: request.name, role: request.role, pool, ttlSeconds });
  runtime.store.mutate((_, touch) => {
    const now = Date.now();
    const existing = cluster.nodes[request.name];
    // Checked again: another request may have claimed the name while the token was signed.
    assertSameIdentity(existing, request.role, pool);
    // A revoked name starts over: it may come back as another role, on another VM.
    const node: NodeState =
      existing && existing.revokedAt === undefined ? existing : { name: request.name, role: request.role, pool, tokens: [] };
    node.tokens = [...node.tokens.filter((t) => t.expiresAt > now), { jti: minted.jti, expiresAt: minted.expiresAt }];
    cluster.nodes[request.name] = node;
    pruneRevocations(cluster, now);
    touch.node(cluster.id, request.name);
    touch.cluster(cluster.id);
  });
  const guestinfo = renderGuestinfo({
    cluster: {
      id: cluster.id,
      name: cluster.name,
      spec: { ...cluster.spec, kubernetesVersion: options.kubernetesVersion ?? cluster.spec.kubernetesVersion },
    },
    node: request.name,
    role: request.role,
    pool,
    controller: {
      url: runtime.advertiseUrl,
      ...(runtime.peerUrls.length > 0 ? { otherUrls: runtime.peerUrls } : {}),
      caCert: runtime.caCertPem,
      token: minted.token,
    },
  });
  runtime.log.info('node.config', { cluster: cluster.id, node: request.name, role: request.role, pool, jti: minted.jti });
  return {
    cluster: { id: cluster.id, name: cluster.name },
    node: request.name,
    role: request.role,
    pool,
    tokenId: minted.jti,
    tokenExpiresAt: new Date(minted.expiresAt).toISOString(),
    guestinfo,
    encodedBytes: encodedSize(guestinfo),
  };
}

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
