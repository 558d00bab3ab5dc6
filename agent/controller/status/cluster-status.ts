import { CONTROL_PLANE_POOL, type ClusterStatus, type NodeStatus } from '../../protocol/api.ts';
import { virtualRouterId } from '../../vip/keepalived.ts';
import { byRegistration } from '../clusters/cluster-records.ts';
import { upgradeView } from '../day-two/upgrade.ts';
import { liveSlot } from '../formation/join-slots.ts';
import { leaderView } from '../formation/lease.ts';
import type { ClusterState, NodeState } from '../store/state.ts';
import { backupStatus, type SnapshotFiles } from '../backups/backups.ts';
import { certificateWarnings, earliestExpiry } from '../certificates/certificates.ts';
import { liveRenewalClaim } from '../certificates/renewal-claim.ts';
import { removalStatus } from '../day-two/node-removal.ts';

export function clusterStatus(cluster: ClusterState, now: number, snapshots: SnapshotFiles): ClusterStatus {
  const view = leaderView(cluster, now);
  const slot = liveSlot(cluster, now);
  const renewal = liveRenewalClaim(cluster, now);
  const nodes = Object.values(cluster.nodes).sort(byRegistration);
  return {
    cluster: {
      id: cluster.id,
      name: cluster.name,
      kubernetesVersion: cluster.spec.kubernetesVersion,
      endpoint: view.endpoint,
      controlPlaneNodes: cluster.spec.controlPlaneNodes,
      virtualRouterId: virtualRouterId(cluster.id),
    },
    leader: {
      holder: view.holder,
      epoch: view.epoch,
      leaseExpiresAt: view.leaseExpiresAt,
      initialized: view.initialized,
      initializedAt: iso(cluster.leader.initializedAt),
    },
    joinSlot: slot ? { holder: slot.holder, expiresAt: new Date(slot.expiresAt).toISOString() } : undefined,
    certificateRenewal: renewal ? { holder: renewal.node, expiresAt: new Date(renewal.expiresAt).toISOString() } : undefined,
    nodes: nodes.map(nodeStatus),
    ...dayTwo(cluster, now, snapshots),
    upgrade: upgradeView(cluster),
    provisioning: provisioningStatus(cluster),
  };
}

function provisioningStatus(cluster: ClusterState): ClusterStatus['provisioning'] {
  if (!cluster.spec.provisioning) return undefined;
  const vms = (pool: string) => Object.values(cluster.nodes).filter((n) => n.pool === pool && n.vm !== undefined).length;
  return {
    pools: [
      { name: CONTROL_PLANE_POOL, size: cluster.spec.controlPlaneNodes, vms: vms(CONTROL_PLANE_POOL) },
      ...cluster.spec.pools.map((p) => ({ name: p.name, size: p.size ?? 0, vms: vms(p.name) })),
    ],
    error: cluster.provisioningError,
  };
}

/** Snapshots and certificate expiry: what the operator has to act on shows as warnings. */
function dayTwo(cluster: ClusterState, now: number, snapshots: SnapshotFiles): Pick<ClusterStatus, 'backups' | 'warnings'> {
  const { backups, warnings } = backupStatus(snapshots, cluster, now);
  return { backups, warnings: [...certificateWarnings(cluster, now), ...warnings] };
}

/** One node as every view shows it: status, and the answer to its register. */
export function nodeStatus(node: NodeState): NodeStatus {
  const reg = node.registration;
  return {
    name: node.name,
    role: node.role,
    pool: node.pool,
    state: nodeState(node),
    uuid: reg?.uuid,
    hostname: reg?.hostname,
    primaryIp: reg?.primaryIp,
    ips: reg?.ips ?? [],
    registeredAt: iso(reg?.registeredAt),
    phase: node.phase,
    phaseState: node.phaseState,
    phaseAt: iso(node.phaseAt),
    lastError: node.lastError,
    joinedAt: iso(node.joinedAt),
    readyAt: iso(node.readyAt),
    certificatesExpireAt: iso(earliestExpiry(node)?.notAfter),
    certificatesCheckedAt: iso(node.certificates?.checkedAt),
    certificatesRenewedAt: iso(node.certificates?.renewedAt),
    vm:
      node.vm || node.vmError
        ? {
            moref: node.vm?.moref ?? '',
            biosUuid: node.vm?.biosUuid ?? '',
            ip: node.vm?.ip,
            template: node.vm?.template,
            replacements: node.vmReplacements ?? 0,
            error: node.vmError,
          }
        : undefined,
    removal: removalStatus(node),
  };
}

export function nodeState(node: NodeState): NodeStatus['state'] {
  if (node.removedAt !== undefined) return 'removed';
  if (node.removal !== undefined) return 'removing';
  if (node.revokedAt !== undefined) return 'revoked';
  if (node.readyAt !== undefined) return 'ready';
  if (node.phaseState === 'failed') return 'failed';
  if (node.phase !== undefined) return 'bootstrapping';
  return node.registration ? 'registered' : 'pending';
}

function iso(epochMs: number | undefined): string | undefined {
  return epochMs === undefined ? undefined : new Date(epochMs).toISOString();
}
