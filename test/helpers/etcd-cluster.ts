import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import { SecretBox } from '../../agent/controller/store/secret-box.ts';
import { etcdBinDir } from '../../scripts/kubernetes/releases.ts';
import { freePort } from '../../scripts/free-port.ts';

/**
 * A real etcd cluster on loopback for tests and the bench: members started from Debian's
 * etcd-server (scripts/setup.sh installs it) or else the etcd built for the real Kubernetes
 * tier, each in its own directory under a temp dir, with TLS (a CA made here, client
 * certificates required). Members are stopped by their PIDs.
 */

export interface EtcdMember {
  name: string;
  clientUrl: string;
  child: ChildProcess | undefined;
}

export interface EtcdCluster {
  members: EtcdMember[];
  urls: string[];
  /** Files the controller takes: --etcd-ca, --etcd-cert, --etcd-key, --etcd-secret-key. */
  caFile: string;
  certFile: string;
  keyFile: string;
  secretKeyFile: string;
  dir: string;
  /** SIGKILLs a member by its PID and waits for it to exit. */
  kill(index: number): Promise<void>;
  /** Starts a killed member again on its data (it rejoins). */
  restart(index: number): Promise<void>;
  /** A client of the cluster (closed by stop()). */
  client(): Etcd3;
  stop(): Promise<void>;
}

/** The etcd binary: Debian's, else the one the real tier built; undefined when neither is there. */
export function etcdBinary(): string | undefined {
  for (const candidate of ['/usr/bin/etcd', path.join(etcdBinDir('3.7.0'), 'etcd')]) if (existsSync(candidate)) return candidate;
  return undefined;
}

export async function startEtcdCluster(options: { members?: number } = {}): Promise<EtcdCluster> {
  const binary = etcdBinary();
  if (!binary) throw new Error('no etcd binary: run scripts/setup.sh as root (it installs etcd-server)');
  const dir = mkdtempSync(path.join(tmpdir(), 'pke-etcd-'));
  const file = (name: string, text: string) => {
    writeFileSync(path.join(dir, name), text, { mode: 0o600 });
    return path.join(dir, name);
  };
  const ca = await createCa('pke-test-etcd-ca');
  const server = await issueCertificate(ca, {
    commonName: 'etcd',
    altNames: ['127.0.0.1', 'localhost'],
    usage: 'server-and-client',
    validDays: 2,
  });
  const clientCert = await issueCertificate(ca, { commonName: 'pke-controller', usage: 'client', validDays: 2 });
  const tls = {
    caFile: file('ca.crt', ca.certPem),
    serverCert: file('server.crt', server.certPem),
    serverKey: file('server.key', server.keyPem),
    certFile: file('client.crt', clientCert.certPem),
    keyFile: file('client.key', clientCert.keyPem),
  };
  const secretKeyFile = file('secret.key', SecretBox.newKeyFileText());

  const count = options.members ?? 3;
  const ports = await Promise.all(Array.from({ length: count * 2 }, () => freePort()));
  const names = Array.from({ length: count }, (_, i) => `m${i}`);
  const peerUrl = (i: number) => `https://127.0.0.1:${ports[2 * i + 1]}`;
  const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(',');
  const members: EtcdMember[] = names.map((name, i) => ({ name, clientUrl: `https://127.0.0.1:${ports[2 * i]}`, child: undefined }));
  const clients: Etcd3[] = [];

  const launch = (i: number, state: 'new' | 'existing') => {
    const member = members[i] as EtcdMember;
    const dataDir = path.join(dir, member.name);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const log = openSync(path.join(dir, `${member.name}.log`), 'a');
    member.child = spawn(
      binary,
      [
        `--name=${member.name}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${member.clientUrl}`,
        `--advertise-client-urls=${member.clientUrl}`,
        `--listen-peer-urls=${peerUrl(i)}`,
        `--initial-advertise-peer-urls=${peerUrl(i)}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-state=${state}`,
        '--initial-cluster-token=pke-test',
        `--cert-file=${tls.serverCert}`,
        `--key-file=${tls.serverKey}`,
        `--trusted-ca-file=${tls.caFile}`,
        '--client-cert-auth',
        `--peer-cert-file=${tls.serverCert}`,
        `--peer-key-file=${tls.serverKey}`,
        `--peer-trusted-ca-file=${tls.caFile}`,
        '--peer-client-cert-auth',
        // Faster elections than the defaults (100 ms, 1 s): loopback peers on a busy test machine.
        '--heartbeat-interval=100',
        '--election-timeout=1000',
        '--logger=zap',
        '--log-level=warn',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
  };
  const client = () => {
    const made = new Etcd3({
      hosts: members.map((m) => m.clientUrl),
      credentials: {
        rootCertificate: Buffer.from(ca.certPem),
        certChain: Buffer.from(clientCert.certPem),
        privateKey: Buffer.from(clientCert.keyPem),
      },
    });
    clients.push(made);
    return made;
  };
  const stopMember = async (member: EtcdMember) => {
    const child = member.child;
    member.child = undefined;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, 'SIGKILL');
    await exited;
  };
  const cluster: EtcdCluster = {
    members,
    urls: members.map((m) => m.clientUrl),
    caFile: tls.caFile,
    certFile: tls.certFile,
    keyFile: tls.keyFile,
    secretKeyFile,
    dir,
    kill: (index) => stopMember(members[index] as EtcdMember),
    restart: async (index) => launch(index, 'existing'),
    client,
    stop: async () => {
      for (const made of clients.splice(0)) made.close();
      for (const member of members) await stopMember(member);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < names.length; i += 1) launch(i, 'new');
    await waitHealthy(client(), dir);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** Until a write goes through (the members elected a leader), 30 s at most. */
async function waitHealthy(client: Etcd3, dir: string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await client
        .put('health')
        .value('ok')
        .options({ deadline: Date.now() + 2000 });
      await client.delete().key('health');
      return;
    } catch (error) {
      if (Date.now() > until) throw new Error(`etcd did not become healthy within 30 s (logs in ${dir}): ${String(error)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** The `controller serve` flags that put a replica's state under `prefix` in this etcd cluster. */
export function controllerEtcdFlags(etcd: EtcdCluster, prefix: string, secretKeyFile = etcd.secretKeyFile): string[] {
  return [
    '--etcd',
    etcd.urls.join(','),
    '--etcd-ca',
    etcd.caFile,
    '--etcd-cert',
    etcd.certFile,
    '--etcd-key',
    etcd.keyFile,
    '--etcd-secret-key',
    secretKeyFile,
    '--etcd-prefix',
    prefix,
  ];
}
