import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { STATE_DIR } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import type { BackupClaim, BackupRecord, EventsRequest } from '../protocol/api.ts';
import { saveSnapshot, sha256OfFile, snapshotStatus } from './snapshot.ts';

/**
 * `pke-agent etcd backup`: asks the controller whether a snapshot is due (scheduled, or asked for
 * with `controller cluster backup`), and if this node got the claim, takes it from the local etcd
 * member, verifies it, and uploads it with its SHA-256. The image's timer runs it every minute on
 * control-plane nodes; the controller hands the claim to one node at a time. Nothing stays on the
 * node: the snapshot file (0600) is removed whether the upload worked or not.
 */

export const BACKUP_PHASE = 'etcd-backup';

export interface BackupController {
  claimBackup(): Promise<BackupClaim>;
  uploadBackup(query: { id: string; sha256: string; takenAt: string; revision?: number }, file: string): Promise<BackupRecord>;
  events(request: EventsRequest): Promise<void>;
}

export type BackupResult = { skipped: string } | { stored: BackupRecord };

export async function runBackup(options: {
  host: Host;
  log: Logger;
  controller: BackupController;
  now?: () => Date;
  signal?: AbortSignal;
}): Promise<BackupResult> {
  const { host, log, controller } = options;
  const now = options.now ?? (() => new Date());
  const claim = await controller.claimBackup();
  if (!claim.due || claim.id === undefined) return { skipped: 'the controller has no snapshot due from this node' };

  const file = `${STATE_DIR}/etcd-snapshot-${claim.id}.db`;
  const report = (event: Omit<EventsRequest['events'][number], 'phase' | 'attempt' | 'at'>) =>
    controller.events({ events: [{ phase: BACKUP_PHASE, attempt: 1, at: now().toISOString(), ...event }] }).catch((error: unknown) => {
      log.warn('etcd.backup.report-failed', { error: errorMessage(error) });
    });
  log.info('etcd.backup.claimed', { backup: claim.id, reason: claim.reason, until: claim.expiresAt });
  await report({ type: 'start' });
  try {
    await host.ensureDir(STATE_DIR, 0o700);
    await host.remove(file);
    const takenAt = now().toISOString();
    await saveSnapshot(host, file, options.signal);
    const status = await snapshotStatus(host, file);
    const sha256 = await sha256OfFile(host.file(file));
    const stored = await controller.uploadBackup({ id: claim.id, sha256, takenAt, revision: status.revision }, host.file(file));
    log.info('etcd.backup.stored', { backup: stored.id, bytes: stored.bytes, revision: status.revision, keys: status.totalKey });
    await report({ type: 'end' });
    return { stored };
  } catch (error) {
    await report({ type: 'fail', message: errorMessage(error).slice(0, 4096) });
    throw error;
  } finally {
    await host.remove(file);
  }
}
