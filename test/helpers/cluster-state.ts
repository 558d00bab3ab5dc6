import type { ClusterState, NodeState } from '../../agent/controller/store/state.ts';
import { CONTROL_PLANE_POOL, clusterSpecSchema, type Placement } from '../../agent/protocol/api.ts';

/** A provisioned cluster's state as the controller keeps it, for the pure functions over it. */

const PLACEMENT: Placement = { template: 'pke-node-k8s-1.31.2', folder: '', resourcePool: 'DC0_C0' };

export function provisionedCluster(nodes: NodeState[], sizes: { cp?: number; workers?: number } = {}): ClusterState {
  const spec = clusterSpecSchema.parse({
    name: 'c',
    kubernetesVersion: '1.31.2',
    controlPlaneEndpoint: { vip: '10.0.0.10' },
    controlPlaneNodes: sizes.cp ?? 3,
    controlPlanePlacement: PLACEMENT,
    pools: [{ name: 'workers', size: sizes.workers ?? 2, placement: PLACEMENT }],
    provisioning: {},
  });
  return {
    id: 'c',
    name: 'c',
    createdAt: 0,
    spec,
    caCertHash: 'sha256:0',
    nodes: Object.fromEntries(nodes.map((n) => [n.name, n])),
    leader: { epoch: 1, initialized: true },
    revokedTokens: {},
  };
}

export const provisionedNode = (name: string, extra: Partial<NodeState> = {}): NodeState => ({
  name,
  role: name.includes('-cp-') ? 'master' : 'worker',
  pool: name.includes('-cp-') ? CONTROL_PLANE_POOL : 'workers',
  tokens: [],
  vm: { moref: `vm-${name}`, biosUuid: `uuid-${name}`, createdAt: 0 },
  ...extra,
});

/**
 * cp-1, cp-2 and workers-1 being upgraded from 1.31.2 to 1.32.0 by rolling replacement:
 * `holder` has its turn with `replacement` named, the nodes in `done` are replaced.
 */
export function replacingCluster(holder: string, replacement: string, done: string[] = []): ClusterState {
  const nodes = ['c-cp-1', 'c-cp-2', 'c-workers-1'].map((n) =>
    provisionedNode(n, {
      upgrade: { to: '1.32.0', ...(n === holder ? { grantedAt: 1, replacement } : {}), ...(done.includes(n) ? { upgradedAt: 2 } : {}) },
    }),
  );
  const cluster = provisionedCluster(nodes, { cp: 2, workers: 1 });
  cluster.upgrade = {
    from: '1.31.2',
    to: '1.32.0',
    startedAt: 0,
    order: ['c-cp-1', 'c-cp-2', 'c-workers-1'],
    holder,
    strategy: 'replace',
    template: 'pke-node-k8s-1.32.0',
  };
  return cluster;
}
