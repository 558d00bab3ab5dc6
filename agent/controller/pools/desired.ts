import { CONTROL_PLANE_POOL, type Placement } from '../../protocol/api.ts';
import { activeUpgrade, replacementOf } from '../day-two/upgrade.ts';
import type { ClusterState, NodeState } from '../store/state.ts';

/**
 * The VMs a provisioned cluster should have. Names are the keys (`CLUSTER-cp-N`,
 * `CLUSTER-POOL-N`, N from 1), so a restart finds what it made. A pool keeps the names of its
 * members and fills what is missing with the lowest free numbers (a removed node's name comes
 * back on a new VM); a shrink drops the highest numbers first. During an upgrade by rolling
 * replacement, the pool of the node being replaced has one VM more: its replacement, cloned from
 * the new version's template, with a number no node of the upgrade has.
 */

export interface DesiredVm {
  name: string;
  role: NodeState['role'];
  pool: string;
  placement: Placement;
  /** The Kubernetes version its node config names: the template's. */
  kubernetesVersion: string;
}

export function controlPlaneVmName(cluster: string, index: number): string {
  return `${cluster}-cp-${index}`;
}

export function poolVmName(cluster: string, pool: string, index: number): string {
  return `${cluster}-${pool}-${index}`;
}

function vmName(cluster: string, pool: string, index: number): string {
  return pool === CONTROL_PLANE_POOL ? controlPlaneVmName(cluster, index) : poolVmName(cluster, pool, index);
}

/** N of a provisioned VM name of the pool, or undefined for any other name. */
function vmIndex(cluster: string, pool: string, name: string): number | undefined {
  const prefix = vmName(cluster, pool, 0).slice(0, -1);
  const rest = name.startsWith(prefix) ? name.slice(prefix.length) : '';
  return /^[1-9]\d{0,5}$/.test(rest) ? Number(rest) : undefined;
}

/** Still in the cluster: not revoked, or revoked by a removal that has not finished. */
function inCluster(node: NodeState): boolean {
  return node.removedAt === undefined && (node.revokedAt === undefined || (node.removal !== undefined && node.removal.state !== 'done'));
}

/** The pool's nodes of provisioned names that are in the cluster, by number. */
function members(cluster: ClusterState, pool: string): { name: string; index: number }[] {
  const found: { name: string; index: number }[] = [];
  for (const node of Object.values(cluster.nodes)) {
    const index = vmIndex(cluster.name, pool, node.name);
    if (index !== undefined && node.pool === pool && inCluster(node)) found.push({ name: node.name, index });
  }
  return found.sort((a, b) => a.index - b.index);
}

function lowestFree(cluster: ClusterState, pool: string, taken: Set<string>): string {
  for (let index = 1; ; index++) {
    const name = vmName(cluster.name, pool, index);
    if (!taken.has(name)) return name;
  }
}

/**
 * The name the replacement of a member of `pool` gets: the lowest number that neither a member
 * nor a node of the upgrade's order has (the order goes by name: a replacement that took a
 * replaced node's name would be taken for it and replaced in turn).
 */
export function replacementName(cluster: ClusterState, pool: string): string {
  const taken = new Set([...members(cluster, pool).map((m) => m.name), ...(activeUpgrade(cluster)?.order ?? [])]);
  return lowestFree(cluster, pool, taken);
}

/**
 * Where new VMs of a role are cloned from and which version their configs name. During a
 * rolling replacement, new control-plane VMs come from the new template at once; new workers
 * only once the control plane is replaced (a kubelet newer than the API server breaks the skew
 * policy).
 */
export function cloneSource(cluster: ClusterState, role: NodeState['role']): { template?: string; kubernetesVersion: string } {
  const upgrade = activeUpgrade(cluster);
  const replacing = upgrade?.strategy === 'replace' && upgrade.template !== undefined;
  if (replacing && (role === 'master' || controlPlaneReplaced(cluster, upgrade.order)))
    return { template: upgrade.template, kubernetesVersion: upgrade.to };
  return { kubernetesVersion: cluster.spec.kubernetesVersion };
}

function controlPlaneReplaced(cluster: ClusterState, order: string[]): boolean {
  return order.every((name) => cluster.nodes[name]?.role !== 'master' || replaced(cluster.nodes[name]!));
}

function replaced(node: NodeState): boolean {
  return node.upgrade?.upgradedAt !== undefined || node.removedAt !== undefined;
}

interface PoolOfVms {
  pool: string;
  role: NodeState['role'];
  size: number;
  placement: Placement;
}

function poolsOf(cluster: ClusterState): PoolOfVms[] {
  const { spec } = cluster;
  if (spec.provisioning === undefined || spec.controlPlanePlacement === undefined) return [];
  const pools: PoolOfVms[] = [
    { pool: CONTROL_PLANE_POOL, role: 'master', size: spec.controlPlaneNodes, placement: spec.controlPlanePlacement },
  ];
  for (const pool of spec.pools)
    if (pool.placement !== undefined) pools.push({ pool: pool.name, role: 'worker', size: pool.size ?? 0, placement: pool.placement });
  return pools;
}

export function desiredVms(cluster: ClusterState): DesiredVm[] {
  const vms: DesiredVm[] = [];
  const holder = activeUpgrade(cluster)?.holder;
  for (const { pool, role, size, placement } of poolsOf(cluster)) {
    const kept = members(cluster, pool);
    const names = new Set<string>();
    let want = size;
    // The member being replaced and its replacement are both wanted until the old one is out.
    const replacement = holder !== undefined && kept.some((m) => m.name === holder) ? replacementOf(cluster, holder) : undefined;
    if (holder !== undefined && replacement !== undefined) {
      names.add(holder).add(replacement);
      want += 1;
    }
    for (const member of kept) if (names.size < want) names.add(member.name);
    const taken = new Set([...names, ...kept.map((m) => m.name)]);
    while (names.size < want) {
      const name = lowestFree(cluster, pool, taken);
      names.add(name);
      taken.add(name);
    }
    const source = cloneSource(cluster, role);
    const at = source.template === undefined ? placement : { ...placement, template: source.template };
    for (const name of names) vms.push({ name, role, pool, placement: at, kubernetesVersion: source.kubernetesVersion });
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
