import { escapeControl } from '../../../core/escape.ts';
import { renderTable } from '../../../core/table.ts';
import type { ClusterStatus } from '../../../protocol/api.ts';
import { commandContext } from '../../context.ts';
import type { ClusterArgs } from '../controller.ts';
import { adminClient } from './connect.ts';
import { upgradeText } from './upgrade.ts';

export async function status(args: ClusterArgs): Promise<void> {
  const ctx = commandContext(args);
  const client = await adminClient(args);
  try {
    const answer = await client.status(args.cluster);
    ctx.print(ctx.json ? JSON.stringify(answer) : statusText(answer));
  } finally {
    await client.close();
  }
}

function statusText(status: ClusterStatus): string {
  const { cluster, leader, joinSlot, nodes, provisioning } = status;
  const masters = nodes.filter((n) => n.role === 'master');
  const workers = nodes.filter((n) => n.role === 'worker');
  const readyOf = (list: typeof nodes) => list.filter((n) => n.state === 'ready').length;
  const lease = leader.initialized
    ? `cluster initialized at ${leader.initializedAt ?? '?'}`
    : leader.holder
      ? `initializing, lease until ${leader.leaseExpiresAt ?? '?'}`
      : 'none yet';
  const header = [
    `cluster ${cluster.name} (${cluster.id})  kubernetes ${cluster.kubernetesVersion}  endpoint ${cluster.endpoint}  virtual_router_id ${cluster.virtualRouterId}`,
    `leader ${leader.holder ?? '-'} (epoch ${leader.epoch}): ${lease}`,
    `join slot ${joinSlot ? `${joinSlot.holder} until ${joinSlot.expiresAt}` : 'free'}`,
    `control plane ${readyOf(masters)}/${cluster.controlPlaneNodes} ready, workers ${readyOf(workers)}/${workers.length} ready`,
  ];
  if (status.certificateRenewal) {
    header.push(`certificate renewal ${status.certificateRenewal.holder} until ${status.certificateRenewal.expiresAt}`);
  }
  if (provisioning) {
    header.push(`pools ${provisioning.pools.map((p) => `${p.name} ${p.vms}/${p.size} VMs`).join(', ')}`);
    if (provisioning.error) header.push(`provisioning: ${provisioning.error}`);
  }
  const rows = nodes.map((n) => [
    n.name,
    n.role,
    n.pool,
    n.state,
    n.primaryIp ?? '-',
    n.phase ? `${n.phase} ${n.phaseState ?? ''}`.trim() : '-',
    n.joinedAt ?? '-',
    n.readyAt ?? '-',
    n.certificatesExpireAt ?? '-',
    n.lastError ?? '',
    n.vm ? `${n.vm.moref || '-'}${n.vm.replacements ? ` (${n.vm.replacements} replaced)` : ''}${n.vm.error ? ` ${n.vm.error}` : ''}` : '',
  ]);
  const latest = status.backups?.latest;
  header.push(
    `etcd snapshots ${status.backups?.stored ?? 0} stored${latest ? `, latest ${latest.id} from ${latest.node} at ${latest.takenAt}` : ''}${status.backups?.pending ? `, ${status.backups.pending} requested` : ''}`,
  );
  for (const warning of status.warnings ?? []) header.push(`WARNING ${warning}`);
  const removals = nodes.filter((n) => n.removal !== undefined && n.removal.state !== 'done');
  return [
    ...header.map(escapeControl),
    '',
    renderTable(
      ['NODE', 'ROLE', 'POOL', 'STATE', 'PRIMARY IP', 'PHASE', 'JOINED AT', 'READY AT', 'CERTS EXPIRE', 'LAST ERROR', 'VM'],
      rows,
    ),
    ...removals.flatMap((n) => [
      '',
      escapeControl(
        `removing ${n.name}${n.removal?.dead ? ' (dead: from the survivors)' : ''}: ${n.removal?.state} at step ${n.removal?.step ?? '-'}`,
      ),
      renderTable(
        ['STEP', 'STATE', 'AT', 'NOTE'],
        (n.removal?.steps ?? []).map((step) => [step.name, step.state, step.at, step.note ?? '']),
      ),
    ]),
    ...(status.upgrade ? ['', upgradeText(status.upgrade)] : []),
  ].join('\n');
}
