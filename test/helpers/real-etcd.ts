import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../scripts/free-port.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { scratchDir } from './cli.ts';

/** The real etcd tools of the newest pinned release (scripts/kubernetes/build.ts), or why they are not there. */
export const etcdBinaries = realBinaries(NEWEST_RELEASE, ['etcd', 'etcdctl', 'etcdutl']);

/**
 * A snapshot made by real etcd: a one-member etcd on loopback ports of its own (plain HTTP, a
 * scratch data dir), `keys` put into it, `etcdctl snapshot save`, then etcd stopped by its PID.
 */
export async function realEtcdSnapshot(keys: Record<string, string>): Promise<Buffer> {
  if (!etcdBinaries.available) throw new Error(etcdBinaries.reason);
  const bin = etcdBinaries.path;
  const scratch = scratchDir('etcd');
  const [client, peer] = [await freePort(), await freePort()];
  const clientUrl = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const etcd = execa(
    bin('etcd'),
    [
      '--name=t',
      `--data-dir=${path.join(scratch.dir, 'data')}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=t=${peerUrl}`,
    ],
    { reject: false },
  );
  try {
    const ctl = (...args: string[]) => execa(bin('etcdctl'), ['--endpoints', clientUrl, ...args], { reject: false });
    for (let i = 0; (await ctl('endpoint', 'health')).exitCode !== 0; i++) {
      if (i > 100) throw new Error('etcd did not become healthy within 20 s');
      await sleep(200);
    }
    for (const [key, value] of Object.entries(keys)) await execa(bin('etcdctl'), ['--endpoints', clientUrl, 'put', key, value]);
    const file = path.join(scratch.dir, 'snapshot.db');
    await execa(bin('etcdctl'), ['--endpoints', clientUrl, 'snapshot', 'save', file]);
    return readFileSync(file);
  } finally {
    etcd.kill('SIGTERM');
    await etcd;
    scratch.remove();
  }
}
