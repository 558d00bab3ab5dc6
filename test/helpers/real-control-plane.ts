import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { issueCertificate, type CertifiedKey } from '../../agent/controller/clusters/pki.ts';
import { ConnectionPool, request } from '../../agent/net/https.ts';
import type { PkiFile } from '../../agent/protocol/api.ts';
import { freePort } from '../../scripts/free-port.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { adminKubeconfig } from '../standins/apiserver-standin.ts';

/**
 * Real etcd, kube-apiserver and kube-controller-manager of the built release, as plain processes
 * on 127.0.0.1 (no namespaces, no kubelet): the real API for tests of what the controller does
 * through it (drains, etcd membership) in seconds rather than a lab formation's minutes. Every
 * process is killed by its PID on close; logs stay in the scratch dir until it is removed.
 */

export const controlPlaneBinaries = realBinaries(NEWEST_RELEASE, ['etcd', 'kube-apiserver', 'kube-controller-manager']);

function binary(command: 'etcd' | 'kube-apiserver' | 'kube-controller-manager'): string {
  if (!controlPlaneBinaries.available) throw new Error(controlPlaneBinaries.reason);
  return controlPlaneBinaries.path(command);
}

const STARTUP_MS = 60_000;

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  /** The running process (a new one after restart). */
  child: Started;
}

export interface RealEtcd {
  members: EtcdMember[];
  /** A client certificate of the etcd CA (as kube-apiserver's etcd client has). */
  client: CertifiedKey;
  /** Kills a member (SIGKILL), as a power cut would; its data stays. */
  kill(name: string): Promise<void>;
  /** Starts a killed member again from its data, and waits until it is healthy. */
  restart(name: string): Promise<void>;
  /** Adds a member as kubeadm's control-plane join does (member add, then the new etcd joins the existing cluster). */
  add(name: string): Promise<EtcdMember>;
  close(): Promise<void>;
}

/** A new etcd cluster of `names` with TLS from the cluster's etcd CA for clients and peers, every member healthy. */
export async function startEtcd(dir: string, pki: Record<PkiFile, string>, names: string[]): Promise<RealEtcd> {
  const etcdCa = { certPem: pki['etcd/ca.crt'], keyPem: pki['etcd/ca.key'] };
  const client = await issueCertificate(etcdCa, { commonName: 'kube-apiserver-etcd-client', usage: 'client', validDays: 1 });
  const pool = new ConnectionPool({ ca: etcdCa.certPem, cert: client.certPem, key: client.keyPem });
  const members: EtcdMember[] = [];
  const argsOf = new Map<string, string[]>();

  /** Writes a member's certificates and the flags it starts with. */
  const prepare = async (name: string, initialCluster: string, state: 'new' | 'existing') => {
    const memberDir = path.join(dir, `etcd-${name}`);
    mkdirSync(memberDir, { recursive: true });
    const cert = await issueCertificate(etcdCa, {
      commonName: name,
      altNames: ['127.0.0.1', 'localhost'],
      usage: 'server-and-client',
      validDays: 1,
    });
    const file = (f: string) => path.join(memberDir, f);
    writeFileSync(file('ca.crt'), etcdCa.certPem);
    writeFileSync(file('member.crt'), cert.certPem);
    writeFileSync(file('member.key'), cert.keyPem, { mode: 0o600 });
    const clientUrl = `https://127.0.0.1:${await freePort()}`;
    const peerUrl =
      initialCluster
        .split(',')
        .find((entry) => entry.startsWith(`${name}=`))
        ?.slice(name.length + 1) ?? '';
    argsOf.set(name, [
      `--name=${name}`,
      `--data-dir=${file('data')}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      '--client-cert-auth=true',
      `--trusted-ca-file=${file('ca.crt')}`,
      `--cert-file=${file('member.crt')}`,
      `--key-file=${file('member.key')}`,
      '--peer-client-cert-auth=true',
      `--peer-trusted-ca-file=${file('ca.crt')}`,
      `--peer-cert-file=${file('member.crt')}`,
      `--peer-key-file=${file('member.key')}`,
    ]);
    return { memberDir, clientUrl, peerUrl, dataDir: file('data') };
  };
  const launch = (name: string, memberDir: string) => start(memberDir, 'etcd', binary('etcd'), argsOf.get(name) ?? []);
  const healthy = (member: EtcdMember) =>
    waitFor(`etcd ${member.name}`, pool, `${member.clientUrl}/health`, (text) => text.includes('"health":"true"'), member.child);

  const peers = await Promise.all(names.map(async (name) => `${name}=https://127.0.0.1:${await freePort()}`));
  for (const name of names) {
    const prepared = await prepare(name, peers.join(','), 'new');
    members.push({ name, ...prepared, child: launch(name, prepared.memberDir) });
  }
  try {
    await Promise.all(members.map(healthy));
  } catch (error) {
    await Promise.all(members.map((member) => kill(member.child)));
    await pool.close();
    throw error;
  }
  const memberNamed = (name: string) => {
    const member = members.find((m) => m.name === name);
    if (!member) throw new Error(`no etcd member ${name}`);
    return member;
  };
  return {
    members,
    client,
    kill: (name) => kill(memberNamed(name).child),
    restart: async (name) => {
      const member = memberNamed(name);
      member.child = launch(name, path.dirname(member.dataDir));
      await healthy(member);
    },
    add: async (name) => {
      const peerUrl = `https://127.0.0.1:${await freePort()}`;
      const seed = members.find((m) => m.child.exitCode === null && m.child.signalCode === null);
      const added = await request(`${seed?.clientUrl}/v3/cluster/member/add`, {
        pool,
        method: 'POST',
        body: JSON.stringify({ peerURLs: [peerUrl] }),
        timeoutMs: 10_000,
      });
      if (added.statusCode !== 200) throw new Error(`etcd member add ${name}: ${added.statusCode} ${added.text}`);
      const current = (JSON.parse(added.text) as { members: { name?: string; peerURLs: string[] }[] }).members
        .map((m) => `${m.name || name}=${m.peerURLs[0]}`)
        .join(',');
      const prepared = await prepare(name, current, 'existing');
      const member: EtcdMember = { name, ...prepared, child: launch(name, prepared.memberDir) };
      members.push(member);
      await healthy(member);
      return member;
    },
    close: async () => {
      await Promise.all(members.map((member) => kill(member.child)));
      await pool.close();
    },
  };
}

export interface RealApiServer {
  url: string;
  /** admin.conf for it (kubernetes-admin, system:masters), inline data as kubeadm writes it. */
  kubeconfig: string;
  close(): Promise<void>;
}

/**
 * kube-apiserver on etcd's first member and kube-controller-manager with only `controllers`
 * (e.g. `disruption`, which keeps PodDisruptionBudgets' status, the Eviction API's input).
 */
export async function startApiServer(
  dir: string,
  pki: Record<PkiFile, string>,
  etcd: RealEtcd,
  controllers: string[],
  options: { port?: number } = {},
): Promise<RealApiServer> {
  const apiDir = path.join(dir, 'apiserver');
  mkdirSync(apiDir, { recursive: true });
  const file = (f: string) => path.join(apiDir, f);
  const port = options.port ?? (await freePort());
  const ca = { certPem: pki['ca.crt'], keyPem: pki['ca.key'] };
  const [serving, admin] = await Promise.all([
    issueCertificate(ca, {
      commonName: 'kube-apiserver',
      altNames: ['127.0.0.1', 'localhost', 'kubernetes', '10.96.0.1'],
      usage: 'server',
      validDays: 1,
    }),
    issueCertificate(ca, { commonName: 'kubernetes-admin', organizations: ['system:masters'], usage: 'client', validDays: 1 }),
  ]);
  const files: Record<string, string> = {
    'ca.crt': ca.certPem,
    'apiserver.crt': serving.certPem,
    'apiserver.key': serving.keyPem,
    'etcd-ca.crt': pki['etcd/ca.crt'],
    'etcd-client.crt': etcd.client.certPem,
    'etcd-client.key': etcd.client.keyPem,
    'sa.key': pki['sa.key'],
    'sa.pub': pki['sa.pub'],
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(file(name), text, { mode: 0o600 });
  const url = `https://127.0.0.1:${port}`;
  const kubeconfig = adminKubeconfig(url, ca.certPem, admin);
  writeFileSync(file('admin.conf'), kubeconfig, { mode: 0o600 });
  const apiserver = start(apiDir, 'kube-apiserver', binary('kube-apiserver'), [
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${file('certs')}`,
    `--etcd-servers=${etcd.members[0]?.clientUrl}`,
    `--etcd-cafile=${file('etcd-ca.crt')}`,
    `--etcd-certfile=${file('etcd-client.crt')}`,
    `--etcd-keyfile=${file('etcd-client.key')}`,
    `--client-ca-file=${file('ca.crt')}`,
    `--tls-cert-file=${file('apiserver.crt')}`,
    `--tls-private-key-file=${file('apiserver.key')}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${file('sa.pub')}`,
    `--service-account-signing-key-file=${file('sa.key')}`,
    '--service-cluster-ip-range=10.96.0.0/12',
    '--authorization-mode=Node,RBAC',
    '--allow-privileged=true',
    // The kubernetes Service's endpoint may not be loopback, and nothing here needs it.
    '--endpoint-reconciler-type=none',
  ]);
  const pool = new ConnectionPool({ ca: ca.certPem, cert: admin.certPem, key: admin.keyPem });
  let manager: ChildProcess | undefined;
  try {
    await waitFor('kube-apiserver', pool, `${url}/readyz`, (text) => text === 'ok', apiserver);
    manager = start(apiDir, 'kube-controller-manager', binary('kube-controller-manager'), [
      `--kubeconfig=${file('admin.conf')}`,
      `--controllers=${controllers.join(',')}`,
      '--leader-elect=false',
      '--use-service-account-credentials=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
      `--authentication-kubeconfig=${file('admin.conf')}`,
      `--authorization-kubeconfig=${file('admin.conf')}`,
    ]);
  } catch (error) {
    await kill(apiserver);
    throw error;
  } finally {
    await pool.close();
  }
  return {
    url,
    kubeconfig,
    close: async () => {
      await Promise.all([kill(manager), kill(apiserver)]);
    },
  };
}

/** A started process and the log its output goes to. */
type Started = ChildProcess & { logFile: string };

function start(dir: string, name: string, command: string, args: string[]): Started {
  const logFile = path.join(dir, `${name}.log`);
  const log = openSync(logFile, 'a');
  return Object.assign(spawn(command, args, { stdio: ['ignore', log, log] }), { logFile });
}

async function waitFor(what: string, pool: ConnectionPool, url: string, ok: (text: string) => boolean, child: Started): Promise<void> {
  const deadline = Date.now() + STARTUP_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it answered ${url}: ${logTail(child)}`);
    try {
      const answer = await request(url, { pool, timeoutMs: 2000 });
      if (answer.statusCode === 200 && ok(answer.text.trim())) return;
      last = `${answer.statusCode} ${answer.text.slice(0, 200)}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(200);
  }
  throw new Error(`${what} did not answer ${url} within ${STARTUP_MS} ms (last: ${last}): ${logTail(child)}`);
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

function logTail(child: Started): string {
  return readFileSync(child.logFile, 'utf8').slice(-1500);
}
