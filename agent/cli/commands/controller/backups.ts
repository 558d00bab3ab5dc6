import { setTimeout as sleep } from 'node:timers/promises';
import { PkeError } from '../../../core/errors.ts';
import { renderTable } from '../../../core/table.ts';
import type { BackupRecord } from '../../../protocol/api.ts';
import { commandContext } from '../../context.ts';
import type { ClusterArgs, ClusterBackupArgs } from '../controller.ts';
import { adminClient } from './connect.ts';
import { parseDuration } from './flags.ts';

/** How often `cluster backup --wait` looks for the snapshot it asked for. */
const POLL_MS = 1000;

/** Asks for a snapshot now; with --wait, waits until a control-plane node has taken and uploaded it. */
export async function requestBackup(args: ClusterBackupArgs): Promise<void> {
  const ctx = commandContext(args);
  const waitSeconds = args.wait === undefined ? 0 : parseDuration('--wait', args.wait);
  const client = await adminClient(args);
  try {
    const { request, requestedAt } = await client.requestBackup(args.cluster);
    ctx.log.info('backup.requested', { request, requestedAt });
    if (waitSeconds === 0) {
      ctx.print(
        ctx.json ? JSON.stringify({ request, requestedAt }) : `requested ${request}; a control-plane node takes it within a minute`,
      );
      return;
    }
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const stored = (await client.listBackups(args.cluster)).backups.find((b) => b.request === request);
      if (stored) {
        ctx.print(ctx.json ? JSON.stringify(stored) : backupsTable([stored]));
        return;
      }
      if (Date.now() > deadline) {
        throw new PkeError(
          `snapshot ${request} was not stored within ${waitSeconds} s; is a control-plane node's pke-etcd-backup.timer running?`,
        );
      }
      await sleep(POLL_MS);
    }
  } finally {
    await client.close();
  }
}

export async function listBackups(args: ClusterArgs): Promise<void> {
  const ctx = commandContext(args);
  const client = await adminClient(args);
  try {
    const list = await client.listBackups(args.cluster);
    if (ctx.json) ctx.print(JSON.stringify(list));
    else ctx.print(`${backupsTable(list.backups)}${list.pending ? `\nrequested, not stored yet: ${list.pending}` : ''}`);
  } finally {
    await client.close();
  }
}

function backupsTable(backups: BackupRecord[]): string {
  return renderTable(
    ['ID', 'NODE', 'REASON', 'TAKEN AT', 'BYTES', 'REVISION', 'SHA-256', 'FILE'],
    backups.map((b) => [b.id, b.node, b.reason, b.takenAt, b.bytes, b.revision, b.sha256.slice(0, 16), b.file]),
  );
}
