import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { createCa } from '../../agent/controller/clusters/pki.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { scratchDir } from './cli.ts';
import { startEtcd } from './real-control-plane.ts';

/** The real etcd tools of the newest pinned release (scripts/kubernetes/build.ts), or why they are not there. */
export const etcdBinaries = realBinaries(NEWEST_RELEASE, ['etcd', 'etcdctl', 'etcdutl']);

/**
 * A snapshot made by real etcd: a one-member etcd started as the cluster tests start theirs
 * (startEtcd: TLS from an etcd CA of its own, loopback ports, a scratch data dir), `keys` put into
 * it, `etcdctl snapshot save`, then etcd stopped by its PID.
 */
export async function realEtcdSnapshot(keys: Record<string, string>): Promise<Buffer> {
  if (!etcdBinaries.available) throw new Error(etcdBinaries.reason);
  const scratch = scratchDir('etcd');
  try {
    const ca = await createCa('etcd-ca');
    const etcd = await startEtcd(scratch.dir, { 'etcd/ca.crt': ca.certPem, 'etcd/ca.key': ca.keyPem }, ['t']);
    try {
      const file = (name: string, text: string) => {
        const at = path.join(scratch.dir, name);
        writeFileSync(at, text, { mode: 0o600 });
        return at;
      };
      const tls = [
        `--cacert=${file('ca.crt', ca.certPem)}`,
        `--cert=${file('client.crt', etcd.client.certPem)}`,
        `--key=${file('client.key', etcd.client.keyPem)}`,
        `--endpoints=${etcd.members[0]?.clientUrl}`,
      ];
      const etcdctl = (...args: string[]) => execa(etcdBinaries.path('etcdctl'), [...tls, ...args]);
      for (const [key, value] of Object.entries(keys)) await etcdctl('put', key, value);
      const snapshot = path.join(scratch.dir, 'snapshot.db');
      await etcdctl('snapshot', 'save', snapshot);
      return readFileSync(snapshot);
    } finally {
      await etcd.close();
    }
  } finally {
    scratch.remove();
  }
}
