// The lab's highly available controller (`npm run lab -- --ha`): a three-member etcd cluster
// (Debian's etcd-server, TLS with client certificates) and three controller replicas sharing
// it, one member and one replica in each controller namespace (ctl, ctl2, ctl3), as three
// controller hosts would run them.
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import { SecretBox } from '../../agent/controller/store/secret-box.ts';
import type { LabHost } from './network.ts';

/** Debian's etcd-server and etcd-client (scripts/setup.sh installs them). */
const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
const CLIENT_PORT = 2379;
const PEER_PORT = 2380;

export interface HaReplica {
  host: LabHost;
  url: string;
  dataDir: string;
  child: ResultPromise | undefined;
}

export interface HaControllers {
  replicas: HaReplica[];
  etcdMembers: ResultPromise[];
}

/** Starts etcd in every host's namespace, waits for its quorum, then a controller replica beside each member. */
export async function startHaControllers(options: {
  hosts: LabHost[];
  workDir: string;
  executable: string;
  port: number;
}): Promise<HaControllers> {
  const { hosts, workDir } = options;
  const dir = path.join(workDir, 'etcd');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string, text: string) => {
    writeFileSync(path.join(dir, name), text, { mode: 0o600 });
    return path.join(dir, name);
  };
  const ca = await createCa('pke-lab-etcd-ca');
  const member = await issueCertificate(ca, {
    commonName: 'etcd',
    altNames: [...hosts.map((h) => h.ip), '127.0.0.1'],
    usage: 'server-and-client',
    validDays: 7,
  });
  const client = await issueCertificate(ca, { commonName: 'pke-controller', usage: 'client', validDays: 7 });
  const tls = {
    ca: file('ca.crt', ca.certPem),
    memberCert: file('member.crt', member.certPem),
    memberKey: file('member.key', member.keyPem),
    cert: file('client.crt', client.certPem),
    key: file('client.key', client.keyPem),
  };
  const secretKey = file('secret.key', SecretBox.newKeyFileText());
  const clientUrls = hosts.map((h) => `https://${h.ip}:${CLIENT_PORT}`);
  const initialCluster = hosts.map((h) => `${h.name}=https://${h.ip}:${PEER_PORT}`).join(',');

  const etcdMembers = hosts.map((host) => {
    const log = createWriteStream(path.join(workDir, `etcd-${host.name}.log`), { flags: 'a' });
    const child = execa(
      'ip',
      [
        'netns',
        'exec',
        host.namespace,
        ETCD,
        `--name=${host.name}`,
        `--data-dir=${path.join(dir, host.name)}`,
        `--listen-client-urls=https://${host.ip}:${CLIENT_PORT}`,
        `--advertise-client-urls=https://${host.ip}:${CLIENT_PORT}`,
        `--listen-peer-urls=https://${host.ip}:${PEER_PORT}`,
        `--initial-advertise-peer-urls=https://${host.ip}:${PEER_PORT}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=pke-lab',
        `--cert-file=${tls.memberCert}`,
        `--key-file=${tls.memberKey}`,
        `--trusted-ca-file=${tls.ca}`,
        '--client-cert-auth',
        `--peer-cert-file=${tls.memberCert}`,
        `--peer-key-file=${tls.memberKey}`,
        `--peer-trusted-ca-file=${tls.ca}`,
        '--peer-client-cert-auth',
        '--logger=zap',
      ],
      { reject: false, buffer: false, stdin: 'ignore' },
    );
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    return child;
  });
  const first = hosts[0] as LabHost;
  await waitFor(`etcd quorum (logs: ${workDir}/etcd-*.log)`, async () => {
    const health = await execa(
      'ip',
      [
        'netns',
        'exec',
        first.namespace,
        ETCDCTL,
        `--endpoints=${clientUrls.join(',')}`,
        `--cacert=${tls.ca}`,
        `--cert=${tls.cert}`,
        `--key=${tls.key}`,
        'endpoint',
        'health',
      ],
      { reject: false, env: { ETCDCTL_API: '3' } },
    );
    return health.exitCode === 0;
  });

  const urls = hosts.map((h) => `https://${h.ip}:${options.port}`);
  const replicas: HaReplica[] = hosts.map((host, i) => ({
    host,
    url: urls[i] as string,
    dataDir: path.join(workDir, i === 0 ? 'controller' : `controller-${host.name}`),
    child: undefined,
  }));
  await Promise.all(
    replicas.map(async (replica) => {
      const log = createWriteStream(path.join(workDir, `controller-${replica.host.name}.log`), { flags: 'a' });
      const peers = urls.filter((url) => url !== replica.url).flatMap((url) => ['--peer-url', url]);
      const child = execa(
        'ip',
        [
          'netns',
          'exec',
          replica.host.namespace,
          options.executable,
          'controller',
          'serve',
          '--data-dir',
          replica.dataDir,
          '--listen',
          `${replica.host.ip}:${options.port}`,
          '--advertise-url',
          replica.url,
          ...peers,
          '--etcd',
          clientUrls.join(','),
          '--etcd-ca',
          tls.ca,
          '--etcd-cert',
          tls.cert,
          '--etcd-key',
          tls.key,
          '--etcd-secret-key',
          secretKey,
        ],
        { reject: false, buffer: false, stdin: 'ignore' },
      );
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      replica.child = child;
      await waitFor(`controller replica on ${replica.host.name} (log: ${workDir}/controller-${replica.host.name}.log)`, async () => {
        if (child.exitCode !== null) throw new Error(`the controller replica on ${replica.host.name} exited ${child.exitCode}`);
        const probe = await execa(
          'ip',
          ['netns', 'exec', replica.host.namespace, 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', `${replica.url}/livez`],
          { reject: false },
        );
        return String(probe.stdout) === '200';
      });
    }),
  );
  return { replicas, etcdMembers };
}

/** Polls `ready` every 200 ms, 60 s at most. */
async function waitFor(what: string, ready: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await ready()) return;
    await sleep(200);
  }
  throw new Error(`${what} was not ready within 60 s`);
}
