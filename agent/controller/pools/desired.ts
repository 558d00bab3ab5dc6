import { CONTROL_PLANE_POOL, type Placement } from '../../protocol/api.ts';
import type { ClusterState, NodeState } from '../store/state.ts';

/**
 * The VMs a provisioned cluster should have: names are the keys (`CLUSTER-cp-N`,
 * `CLUSTER-POOL-N`, N from 1), so a restart finds what it made and a shrink removes the
 * highest numbers first.
 */

export interface DesiredVm {
  name: string;
  role: NodeState['role'];
  pool: string;
  placement: Placement;
}

export function controlPlaneVmName(cluster: string, index: number): string {
  return `${cluster}-cp-${index}`;
}

export function poolVmName(cluster: string, pool: string, index: number): string {
  return `${cluster}-${pool}-${index}`;
}

export function desiredVms(cluster: ClusterState): DesiredVm[] {
  const { spec } = cluster;
  if (spec.provisioning === undefined || spec.controlPlanePlacement === undefined) return [];
  const vms: DesiredVm[] = [];
  for (let i = 1; i <= spec.controlPlaneNodes; i++) {
    vms.push({
      name: controlPlaneVmName(cluster.name, i),
      role: 'master',
      pool: CONTROL_PLANE_POOL,
      placement: spec.controlPlanePlacement,
    });
  }
  for (const pool of spec.pools) {
    if (pool.placement === undefined) continue;
    for (let i = 1; i <= (pool.size ?? 0); i++)
      vms.push({ name: poolVmName(cluster.name, pool.name, i), role: 'worker', pool: pool.name, placement: pool.placement });
  }
  return vms;
}

/** Nodes that have a provisioned VM the spec no longer wants (a pool shrunk). */
export function surplusVms(cluster: ClusterState, desired: DesiredVm[]): NodeState[] {
  const wanted = new Set(desired.map((vm) => vm.name));
  return Object.values(cluster.nodes).filter(
    (node) => node.vm !== undefined && !wanted.has(node.name) && (node.removal === undefined || node.removal.state === 'done'),
  );
}

/** Why a worker's VM should be replaced now, or undefined while it is progressing (or ready). */
export function stalledReason(
  node: NodeState,
  now: number,
  limits: { progressTimeoutSeconds: number; failedGraceMs: number },
): string | undefined {
  if (node.vm === undefined || node.readyAt !== undefined || node.revokedAt !== undefined) return undefined;
  const lastProgress = Math.max(node.vm.createdAt, node.phaseAt ?? 0);
  // A phase's failure is retried by the agent itself; only one with nothing after it is final.
  if (node.phaseState === 'failed' && now - lastProgress >= limits.failedGraceMs)
    return `phase ${node.phase ?? '?'} failed${node.lastError ? `: ${node.lastError}` : ''}`;
  if (now - lastProgress >= limits.progressTimeoutSeconds * 1000)
    return `no progress for ${limits.progressTimeoutSeconds} s (last phase: ${node.phase ?? 'none reported'})`;
  return undefined;
}
