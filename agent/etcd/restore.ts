import { parse } from 'yaml';
import { z } from 'zod';
import { PkeError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { STATE_DIR } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { acquireBootstrapLock } from '../journal/lock.ts';
import { CONTROL_PLANE_PODS, PAUSED_MANIFESTS_DIR, startStaticPod, stopStaticPod, waitForEndpoint } from '../kube/static-pods.ts';
import { sha256OfFile, snapshotStatus, type SnapshotStatus } from './snapshot.ts';

/**
 * `pke-agent restore --snapshot FILE` on the first control-plane node: the whole control plane's
 * state rolled back to a snapshot, as etcd's and Kubernetes' docs give it. Every static pod is
 * stopped (the API server first, etcd last), the member's files are moved aside within its data dir
 * (kept, never deleted), `etcdutl snapshot restore` makes a new one-member etcd cluster of this node from the
 * snapshot (its revision bumped and compacted, so no watcher mistakes the old state for new), and
 * the static pods start again (etcd first), then the kubelet restarts. Each step is journaled in
 * /var/lib/pke-agent/etcd-restore.json: a run stopped anywhere resumes. Other control-plane nodes
 * are members of the old etcd cluster: their static pods stopped before, they rejoin after
 * (`--rejoin`, bootstrap/rejoin.ts; README, "etcd backups and restore").
 */

export const RESTORE_JOURNAL = `${STATE_DIR}/etcd-restore.json`;
const ETCD_MANIFEST = '/etc/kubernetes/manifests/etcd.yaml';
/** Far beyond any revision a watcher has seen (etcd's and Kubernetes' docs suggest such a bump on restore). */
const BUMP_REVISION = 1_000_000_000;
const RESTORE_TIMEOUT_MS = 30 * 60_000;
/**
 * The API server first. kubeadm's kubelet on a control-plane node talks to the local API server,
 * and deletes a stopped static pod's mirror pod through it; with the other members stopped, that
 * server has no etcd quorum and each delete hangs until its timeout (34 s), holding the kubelet's
 * sync loop: stopping the scheduler first held the API server's stop beyond two minutes (the
 * real tier, two control-plane nodes). Once the API server is gone, those deletes fail at once.
 */
const STOP_ORDER = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'] as const;

const restoreSchema = z.object({
  snapshot: z.string(),
  sha256: z.string(),
  startedAt: z.string(),
  member: z.object({ name: z.string(), peerUrl: z.string(), dataDir: z.string() }),
  stopped: z.boolean(),
  movedAside: z.string().optional(),
  restored: z.boolean(),
  finishedAt: z.string().optional(),
});
type RestoreJournal = z.infer<typeof restoreSchema>;

export interface RestoreResult {
  snapshot: SnapshotStatus;
  member: RestoreJournal['member'];
  /** Where the data dir from before the restore was kept. */
  movedAside: string;
}

export async function restoreSnapshot(options: {
  host: Host;
  log: Logger;
  /** The snapshot file, a node path. */
  snapshot: string;
  /** The cluster's endpoint (VIP and port), which must answer again before the restore is done. */
  endpoint: { vip: string; port: number };
  now?: () => Date;
  signal?: AbortSignal;
}): Promise<RestoreResult> {
  const { host, log, signal } = options;
  const now = options.now ?? (() => new Date());
  const unlock = await acquireBootstrapLock(host);
  try {
    const status = await snapshotStatus(host, options.snapshot);
    const sha256 = await sha256OfFile(host.file(options.snapshot));
    let journal = await readJournal(host);
    if (journal && journal.finishedAt === undefined && journal.sha256 === sha256) {
      log.warn('etcd.restore.resume', { startedAt: journal.startedAt, stopped: journal.stopped, restored: journal.restored });
    } else {
      journal = {
        snapshot: options.snapshot,
        sha256,
        startedAt: now().toISOString(),
        member: await etcdMember(host),
        stopped: false,
        restored: false,
      };
      await writeJournal(host, journal);
    }
    log.info('etcd.restore.start', {
      snapshot: options.snapshot,
      revision: status.revision,
      keys: status.totalKey,
      member: journal.member.name,
    });

    if (!journal.stopped) {
      for (const pod of STOP_ORDER.map((name) => CONTROL_PLANE_PODS.find((p) => p.name === name)!)) {
        if (await host.exists(`${PAUSED_MANIFESTS_DIR}/${pod.name}.yaml`)) continue;
        await stopStaticPod(host, pod, log, signal);
      }
      journal = { ...journal, stopped: true };
      await writeJournal(host, journal);
    }
    const { dataDir, name, peerUrl } = journal.member;
    // Within the data dir, which may be a mount of its own (a disk for etcd) or an overlay's
    // directory, neither of which can be renamed: the member's files are what moves.
    const member = `${dataDir}/member`;
    const scratch = `${dataDir}/pke-restore`;
    if (!journal.restored) {
      if (journal.movedAside === undefined) {
        const aside = `${dataDir}/member.before-restore-${journal.startedAt.replace(/[-:.]/g, '')}`;
        if (await host.exists(member)) await host.move(member, aside);
        journal = { ...journal, movedAside: aside };
        await writeJournal(host, journal);
      }
      // A restore that stopped half-way left a partial one; etcdutl wants none.
      await host.remove(scratch);
      await host.remove(member);
      const args = [
        'snapshot',
        'restore',
        options.snapshot,
        '--name',
        name,
        '--initial-cluster',
        `${name}=${peerUrl}`,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--data-dir',
        scratch,
        '--bump-revision',
        String(BUMP_REVISION),
        '--mark-compacted',
      ];
      await host.run(
        'etcdutl',
        args.map((arg) => (arg === options.snapshot || arg === scratch ? host.file(arg) : arg)),
        { timeoutMs: RESTORE_TIMEOUT_MS, displayArgs: args },
      );
      await host.move(`${scratch}/member`, member);
      await host.remove(scratch);
      journal = { ...journal, restored: true };
      await writeJournal(host, journal);
      log.info('etcd.restore.restored', { dataDir, member: name });
    }
    for (const pod of CONTROL_PLANE_PODS) await startStaticPod(host, pod, log, signal);
    await host.service.restart('kubelet');
    await waitForEndpoint(host, options.endpoint, log, signal);
    journal = { ...journal, finishedAt: now().toISOString() };
    await writeJournal(host, journal);
    log.info('etcd.restore.done', { revision: status.revision, keptAside: journal.movedAside });
    return { snapshot: status, member: journal.member, movedAside: journal.movedAside ?? '' };
  } finally {
    await unlock();
  }
}

/** This node's etcd member as kubeadm's static pod runs it: name, peer URL, data dir. */
async function etcdMember(host: Host): Promise<RestoreJournal['member']> {
  const file = (await host.exists(ETCD_MANIFEST)) ? ETCD_MANIFEST : `${PAUSED_MANIFESTS_DIR}/etcd.yaml`;
  const text = await host.readText(file);
  if (text === undefined) throw new PkeError(`${ETCD_MANIFEST} is missing: restore runs on a control-plane node with local etcd`);
  const manifest = parse(text) as { spec?: { containers?: { command?: string[] }[] } };
  const command = manifest.spec?.containers?.[0]?.command ?? [];
  const flag = (name: string) => {
    const value = command.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
    if (!value) throw new PkeError(`${file}: etcd has no --${name}`);
    return value;
  };
  return { name: flag('name'), peerUrl: flag('initial-advertise-peer-urls'), dataDir: flag('data-dir') };
}

async function readJournal(host: Host): Promise<RestoreJournal | undefined> {
  const text = await host.readText(RESTORE_JOURNAL);
  if (text === undefined) return undefined;
  try {
    return restoreSchema.parse(JSON.parse(text));
  } catch {
    throw new PkeError(`${host.file(RESTORE_JOURNAL)} is corrupt; move it aside to start the restore afresh`);
  }
}

async function writeJournal(host: Host, journal: RestoreJournal): Promise<void> {
  await host.writeFile(RESTORE_JOURNAL, `${JSON.stringify(journal, null, 2)}\n`, { mode: 0o600 });
}
