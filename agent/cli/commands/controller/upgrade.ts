import { escapeControl } from '../../../core/escape.ts';
import { renderTable } from '../../../core/table.ts';
import type { UpgradeView } from '../../../protocol/upgrade.ts';
import { commandContext } from '../../context.ts';
import type { ClusterUpgradeArgs } from '../controller.ts';
import { adminClient, asInputError } from './connect.ts';

export async function upgradeCluster(args: ClusterUpgradeArgs): Promise<void> {
  const ctx = commandContext(args);
  const client = await adminClient(args);
  try {
    const view = await client.startUpgrade(args.cluster, { to: args.to.replace(/^v/, '') }).catch((error: unknown) => {
      throw asInputError(error, { to: '--to' });
    });
    ctx.print(
      ctx.json
        ? JSON.stringify(view)
        : [
            upgradeText(view),
            '',
            'Run `pke-agent upgrade` on every node (each waits for its turn); `controller status` shows the progress.',
          ].join('\n'),
    );
  } finally {
    await client.close();
  }
}

/** The upgrade as `controller status` and `cluster upgrade` show it: one line, then a row per node. */
export function upgradeText(view: UpgradeView): string {
  const done = view.nodes.filter((n) => n.state === 'upgraded').length;
  const where = view.finishedAt
    ? `finished at ${view.finishedAt}`
    : view.stopped
      ? `STOPPED at ${view.stopped.node}, phase ${view.stopped.phase}: ${view.stopped.error ?? 'failed'}`
      : view.holder
        ? `${view.holder} upgrading`
        : 'waiting for the next node to ask for its turn';
  const rows = view.nodes.map((n) => [
    n.name,
    n.role,
    `kubeadm upgrade ${n.mode}`,
    n.state,
    n.phase ?? '-',
    n.startedAt ?? '-',
    n.seconds === undefined ? '-' : `${n.seconds.toFixed(1)} s`,
  ]);
  return [
    escapeControl(`upgrade ${view.from} -> ${view.to}: ${done}/${view.nodes.length} nodes upgraded, ${where}`),
    renderTable(['NODE', 'ROLE', 'RUNS', 'UPGRADE', 'PHASE', 'STARTED AT', 'TOOK'], rows),
  ].join('\n');
}
