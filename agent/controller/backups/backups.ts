import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import type { BackupClaim, BackupList, BackupRecord, BackupRequestResponse, ClusterStatus } from '../../protocol/api.ts';
import { ApiProblem, badRequest, conflict } from '../http/problem.ts';
import type { DataDir } from '../store/data-dir.ts';

/** Where snapshot files are kept: always the data dir of the controller (the replica) that took the upload. */
export type SnapshotFiles = Pick<DataDir, 'backupFile'>;
import type { BackupClaimState, ClusterState, StoredBackup } from '../store/state.ts';
import type { Touch } from '../store/state-store.ts';

/**
 * etcd snapshots of a cluster, kept by the controller. Control-plane nodes ask for a claim (their
 * timer asks every minute); the controller hands one node at a time a claim when a snapshot is
 * due (by the cluster's interval, or because the admin asked for one), and takes the upload only
 * from the node that holds that claim. A snapshot is stored (0600, in the data dir) only after its
 * size, the SHA-256 the node sent and the SHA-256 etcd appends to every snapshot all check out;
 * the oldest beyond the cluster's `retain` are deleted.
 */

/** How long a node has to take and upload the snapshot it claimed; after that the claim goes to the next node that asks. */
export const CLAIM_TTL_MS = 15 * 60_000;
/** etcd appends the SHA-256 of the database to a snapshot; the database is whole pages, a multiple of 512 bytes. */
const ETCD_HASH_BYTES = 32;

type BackupsState = NonNullable<ClusterState['backups']>;

function backupsOf(cluster: ClusterState): BackupsState {
  cluster.backups ??= { stored: [] };
  return cluster.backups;
}

/** `20261206T110000Z-1a2b3c4d`: sorts by time, and is safe as a file name. */
function newBackupId(now: number): string {
  const stamp = new Date(now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** The admin asks for a snapshot now. An open request is answered again rather than doubled. */
export function requestBackup(cluster: ClusterState, now: number, touch: Touch): BackupRequestResponse {
  const backups = backupsOf(cluster);
  backups.requested ??= { id: newBackupId(now), at: now };
  touch.cluster(cluster.id);
  return { request: backups.requested.id, requestedAt: new Date(backups.requested.at).toISOString() };
}

/** Why a scheduled snapshot is due now, or undefined. */
function scheduledDue(cluster: ClusterState, now: number): boolean {
  const hours = cluster.spec.backups.intervalHours;
  if (hours === 0) return false;
  const latest = cluster.backups?.stored.at(-1);
  return latest === undefined || now - latest.takenAt >= hours * 3_600_000;
}

/**
 * A control-plane node asks whether to take a snapshot. Only a member of the cluster's etcd (a
 * control-plane node that reported joined, of an initialized cluster) may; one claim at a time.
 */
export function claimBackup(cluster: ClusterState, nodeName: string, now: number, touch: Touch): BackupClaim {
  const node = cluster.nodes[nodeName];
  if (!cluster.leader.initialized || node?.role !== 'master' || node.joinedAt === undefined || node.revokedAt !== undefined) {
    return { due: false };
  }
  const current = cluster.backups?.claim;
  const live = current !== undefined && current.expiresAt > now ? current : undefined;
  if (live) return live.node === nodeName ? claimAnswer(live) : { due: false };
  const requested = cluster.backups?.requested;
  if (requested === undefined && !scheduledDue(cluster, now)) return { due: false };
  const claim: BackupClaimState = {
    id: requested?.id ?? newBackupId(now),
    node: nodeName,
    reason: requested ? 'requested' : 'scheduled',
    request: requested?.id,
    expiresAt: now + CLAIM_TTL_MS,
  };
  backupsOf(cluster).claim = claim;
  touch.cluster(cluster.id);
  return claimAnswer(claim);
}

function claimAnswer(claim: BackupClaimState): BackupClaim {
  return { due: true, id: claim.id, reason: claim.reason, expiresAt: new Date(claim.expiresAt).toISOString() };
}

export interface UploadQuery {
  id: string;
  sha256: string;
  takenAt: string;
  revision?: number;
}

/**
 * Checks an upload against the claim the controller handed out (this cluster, this node, this
 * id), streams it to a temporary file (0600) while counting and hashing, and keeps it only if
 * every check passes. Returns the claim it answers, which the caller records (`recordBackup`); or
 * the stored snapshot when this is a retry of an upload that was stored already.
 */
export async function receiveBackup(options: {
  cluster: ClusterState;
  node: string;
  query: UploadQuery;
  body: IncomingMessage;
  snapshots: SnapshotFiles;
}): Promise<{ claim: BackupClaimState; stored: StoredBackup } | { again: StoredBackup }> {
  const { cluster, node, query, body, snapshots } = options;
  // A retry of an upload whose answer was lost: the same snapshot is stored already.
  const again = cluster.backups?.stored.find((b) => b.id === query.id && b.node === node && b.sha256 === query.sha256);
  if (again) return { again };
  const claim = cluster.backups?.claim;
  if (claim === undefined || claim.id !== query.id || claim.node !== node) {
    throw conflict(`node ${node} holds no backup claim ${query.id} in cluster ${cluster.name}; ask for a claim first (backup-claim)`);
  }
  const maxBytes = cluster.spec.backups.maxBytes;
  const tooLarge = () =>
    new ApiProblem(413, 'body-too-large', `the snapshot exceeds the cluster's limit of ${maxBytes} bytes (spec backups.maxBytes)`);
  if (Number(body.headers['content-length'] ?? 0) > maxBytes) throw tooLarge();
  const takenAt = Date.parse(query.takenAt);
  if (Number.isNaN(takenAt)) throw badRequest('query.takenAt: not a time', 'query.takenAt');

  const file = snapshots.backupFile(cluster.id, query.id);
  const partial = `${file}.part`;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const handle = await open(partial, 'w', 0o600);
  const whole = createHash('sha256');
  // etcd's own hash covers all but its last 32 bytes: hold those back until the next chunk.
  const database = createHash('sha256');
  let held = Buffer.alloc(0);
  let bytes = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > maxBytes) throw tooLarge();
      whole.update(chunk);
      const joined = Buffer.concat([held, chunk]);
      const cut = Math.max(0, joined.length - ETCD_HASH_BYTES);
      database.update(joined.subarray(0, cut));
      held = joined.subarray(cut);
      await handle.write(chunk);
    }
    const sha256 = whole.digest('hex');
    if (sha256 !== query.sha256)
      throw badRequest(`query.sha256: the body's SHA-256 is ${sha256}, not ${query.sha256} (damaged in transit?)`, 'query.sha256');
    if (bytes % 512 !== ETCD_HASH_BYTES || !database.digest().equals(held)) {
      throw badRequest(`the body is not an etcd snapshot whose own SHA-256 checks out (${bytes} bytes)`);
    }
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(partial, { force: true });
    throw error;
  }
  await handle.close();
  await rename(partial, file);
  return {
    claim,
    stored: {
      id: query.id,
      node,
      reason: claim.reason,
      request: claim.request,
      takenAt,
      storedAt: Date.now(),
      bytes,
      sha256: query.sha256,
      revision: query.revision,
    },
  };
}

/**
 * Records a stored snapshot, ends its claim (and the request it answered), and drops the oldest
 * beyond the cluster's `retain`. Returns those dropped, whose files the caller deletes once the
 * state is on disk.
 */
export function recordBackup(cluster: ClusterState, claim: BackupClaimState, stored: StoredBackup, touch: Touch): StoredBackup[] {
  const backups = backupsOf(cluster);
  if (backups.claim?.id === claim.id) backups.claim = undefined;
  if (claim.request !== undefined && backups.requested?.id === claim.request) backups.requested = undefined;
  backups.stored = [...backups.stored.filter((b) => b.id !== stored.id), stored].sort((a, b) => a.takenAt - b.takenAt);
  const dropped = backups.stored.slice(0, Math.max(0, backups.stored.length - cluster.spec.backups.retain));
  backups.stored = backups.stored.slice(dropped.length);
  touch.cluster(cluster.id);
  return dropped;
}

export async function deleteBackupFiles(snapshots: SnapshotFiles, cluster: string, dropped: StoredBackup[]): Promise<void> {
  await Promise.all(dropped.map((b) => rm(snapshots.backupFile(cluster, b.id), { force: true })));
}

export function backupRecord(snapshots: SnapshotFiles, cluster: ClusterState, b: StoredBackup): BackupRecord {
  return {
    id: b.id,
    node: b.node,
    reason: b.reason,
    request: b.request,
    takenAt: new Date(b.takenAt).toISOString(),
    storedAt: new Date(b.storedAt).toISOString(),
    bytes: b.bytes,
    sha256: b.sha256,
    revision: b.revision,
    file: snapshots.backupFile(cluster.id, b.id),
  };
}

export function listBackups(snapshots: SnapshotFiles, cluster: ClusterState): BackupList {
  const backups = cluster.backups;
  return {
    backups: (backups?.stored ?? []).map((b) => backupRecord(snapshots, cluster, b)).reverse(),
    pending: backups?.requested?.id,
  };
}

/** The backups line of `status`, and a warning when the schedule has fallen behind by more than one interval. */
export function backupStatus(
  snapshots: SnapshotFiles,
  cluster: ClusterState,
  now: number,
): { backups: NonNullable<ClusterStatus['backups']>; warnings: string[] } {
  const stored = cluster.backups?.stored ?? [];
  const latest = stored.at(-1);
  const warnings: string[] = [];
  const hours = cluster.spec.backups.intervalHours;
  const since = latest?.takenAt ?? cluster.leader.initializedAt;
  if (hours > 0 && cluster.leader.initialized && since !== undefined && now - since > 2 * hours * 3_600_000) {
    warnings.push(
      latest
        ? `the latest etcd snapshot is from ${new Date(latest.takenAt).toISOString()}, more than twice the ${hours} h interval ago`
        : `no etcd snapshot since the cluster was initialized, more than twice the ${hours} h interval ago`,
    );
  }
  return {
    backups: {
      latest: latest ? backupRecord(snapshots, cluster, latest) : undefined,
      stored: stored.length,
      pending: cluster.backups?.requested?.id,
    },
    warnings,
  };
}
