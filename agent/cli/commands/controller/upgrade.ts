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
    const request = { to: args.to.replace(/^v/, ''), strategy: args.strategy, ...(args.template ? { template: args.template } : {}) };
    const view = await client.startUpgrade(args.cluster, request).catch((error: unknown) => {
      throw asInputError(error, { to: '--to', strategy: '--strategy', template: '--template' });
    });
    const next =
      view.strategy === 'replace'
        ? 'The controller clones a new VM for each node in turn and removes the old node once the new one is Ready; `controller status` shows the progress.'
        : 'Run `pke-agent upgrade` on every node (each waits for its turn); `controller status` shows the progress.';
    ctx.print(ctx.json ? JSON.stringify(view) : [upgradeText(view), '', next].join('\n'));
  } finally {
    await client.close();
  }
}

/** The upgrade as `controller status` and `cluster upgrade` show it: one line, then a row per node. */
export function upgradeText(view: UpgradeView): string {
  const done = view.nodes.filter((n) => n.state === 'upgraded').length;
  const how = view.strategy === 'replace' ? ` by replacement from ${view.template}` : '';
  const where = view.finishedAt
    ? `finished at ${view.finishedAt}`
    : view.stopped
      ? `STOPPED at ${view.stopped.node}, phase ${view.stopped.phase}: ${view.stopped.error ?? 'failed'}`
      : view.holder
        ? `${view.holder} upgrading`
        : view.strategy === 'replace'
          ? 'the controller takes the next node'
          : 'waiting for the next node to ask for its turn';
  const rows = view.nodes.map((n) => [
    n.name,
    n.role,
    n.mode === 'replace' ? `replaced by ${n.replacement ?? '-'}` : `kubeadm upgrade ${n.mode}`,
    n.state,
    n.phase ?? '-',
    n.startedAt ?? '-',
    n.seconds === undefined ? '-' : `${n.seconds.toFixed(1)} s`,
  ]);
  return [
    escapeControl(`upgrade ${view.from} -> ${view.to}${how}: ${done}/${view.nodes.length} nodes upgraded, ${where}`),
    renderTable(['NODE', 'ROLE', 'RUNS', 'UPGRADE', 'PHASE', 'STARTED AT', 'TOOK'], rows),
  ].join('\n');
}
