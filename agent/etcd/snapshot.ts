import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { z } from 'zod';
import { PkeError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { PKI_DIR } from '../kube/paths.ts';

/**
 * etcd snapshots through etcd's own tools: `etcdctl snapshot save` against the node's local
 * member (with kubeadm's health-check client certificate, which etcd's client-certificate auth
 * lets in), `etcdutl snapshot status` to read and verify one offline, `etcdutl snapshot restore`
 * (in restore.ts). A snapshot file ends with the SHA-256 etcd computed of it, which both check.
 */

export const LOCAL_ETCD = 'https://127.0.0.1:2379';
const SNAPSHOT_TIMEOUT_MS = 10 * 60_000;

const statusSchema = z.object({ hash: z.number(), revision: z.number().int(), totalKey: z.number().int(), totalSize: z.number().int() });
export type SnapshotStatus = z.infer<typeof statusSchema>;

export function etcdctlTls(): string[] {
  const pki = `${PKI_DIR}/etcd`;
  return ['--cacert', `${pki}/ca.crt`, '--cert', `${pki}/healthcheck-client.crt`, '--key', `${pki}/healthcheck-client.key`];
}

/** `etcdctl snapshot save` of the local member into `nodePath` (0600, as etcdctl writes it). */
export async function saveSnapshot(host: Host, nodePath: string, signal?: AbortSignal): Promise<void> {
  // etcdctl reads the certificates itself: the paths it is given are the host's.
  const tls = etcdctlTls().map((arg) => (arg.startsWith('/') ? host.file(arg) : arg));
  await host.run('etcdctl', ['--endpoints', LOCAL_ETCD, ...tls, 'snapshot', 'save', host.file(nodePath)], {
    timeoutMs: SNAPSHOT_TIMEOUT_MS,
    signal,
    displayArgs: ['--endpoints', LOCAL_ETCD, ...etcdctlTls(), 'snapshot', 'save', nodePath],
  });
}

/** `etcdutl snapshot status`: fails on a file that is not a whole snapshot. */
export async function snapshotStatus(host: Host, nodePath: string): Promise<SnapshotStatus> {
  const { stdout } = await host.run('etcdutl', ['snapshot', 'status', host.file(nodePath), '-w', 'json'], {
    displayArgs: ['snapshot', 'status', nodePath, '-w', 'json'],
  });
  const parsed = statusSchema.safeParse(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}'));
  if (!parsed.success) throw new PkeError(`etcdutl snapshot status ${nodePath}: unexpected answer ${stdout.slice(0, 200)}`);
  return parsed.data;
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
