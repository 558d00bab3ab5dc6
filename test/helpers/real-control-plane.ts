import { spawn, type ChildProcess } from 'node:child_process';
import { execa } from 'execa';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
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

/** The real kubectl of the same release, for `RealApiServer.kubectl`. */
export const kubectlBinary = realBinaries(NEWEST_RELEASE, ['kubectl']);

/** One command's path, so that a test of etcd alone needs only etcd built. */
function binary(command: 'etcd' | 'kube-apiserver' | 'kube-controller-manager'): string {
  const found = realBinaries(NEWEST_RELEASE, [command]);
  if (!found.available) throw new Error(found.reason);
  return found.path(command);
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

/** The cluster's etcd CA: all startEtcd needs of its PKI. */
export type EtcdCaFiles = Pick<Record<PkiFile, string>, 'etcd/ca.crt' | 'etcd/ca.key'>;

/** A new etcd cluster of `names` with TLS from the cluster's etcd CA for clients and peers, every member healthy. */
export async function startEtcd(dir: string, pki: EtcdCaFiles, names: string[]): Promise<RealEtcd> {
  const etcdCa = { certPem: pki['etcd/ca.crt'], keyPem: pki['etcd/ca.key'] };
  const client = await issueCertificate(etcdCa, { commonName: 'kube-apiserver-etcd-client', usage: 'client', validDays: 1 });
  const pool = new ConnectionPool({ ca: etcdCa.certPem, cert: client.certPem, key: client.keyPem });
  const members: EtcdMember[] = [];
  const argsOf = new Map<string, string[]>();

  /** Writes a member's certificates and the flags it starts with. */
  const prepare = async (name: string, initialCluster: string, state: 'new' | 'existing') => {
    // A name can come back after its member was removed (a replacement VM takes it): new data then.
    let memberDir = path.join(dir, `etcd-${name}`);
    for (let n = 2; existsSync(memberDir); n++) memberDir = path.join(dir, `etcd-${name}-${n}`);
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
    const member = members.findLast((m) => m.name === name);
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
      const memberAdd = () =>
        request(`${seed?.clientUrl}/v3/cluster/member/add`, {
          pool,
          method: 'POST',
          body: JSON.stringify({ peerURLs: [peerUrl] }),
          timeoutMs: 10_000,
        });
      let added = await memberAdd();
      // etcd refuses a member add until every member has been connected for a while after a start
      // or a change ("unhealthy cluster"); kubeadm's join asks again, and so does this.
      for (let attempt = 0; attempt < 40 && added.statusCode === 503 && added.text.includes('unhealthy cluster'); attempt++) {
        await sleep(250);
        added = await memberAdd();
      }
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

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON read back for assertions
export type Json = Record<string, any>;

export interface RealApiServer {
  url: string;
  /** admin.conf for it (kubernetes-admin, system:masters), inline data as kubeadm writes it. */
  kubeconfig: string;
  /** A request as kubernetes-admin, `body` sent as JSON with content-type `type`, the answer's JSON read back. */
  call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', pathname: string, body?: unknown, type?: string): Promise<{ code: number; json: Json }>;
  /** The real kubectl against admin.conf, `input` on its stdin; never rejects, the exit code says. */
  kubectl(args: string[], input?: string): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  close(): Promise<void>;
}

/**
 * kube-apiserver on etcd's first member and kube-controller-manager with only `controllers`
 * (e.g. `disruption`, which keeps PodDisruptionBudgets' status, the Eviction API's input); no
 * controller manager at all when `controllers` is empty (enough for `kubectl apply --dry-run=server`).
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
    if (controllers.length > 0)
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
    await pool.close();
    throw error;
  }
  return {
    url,
    kubeconfig,
    call: async (method, pathname, body, type = 'application/json') => {
      const answer = await request(`${url}${pathname}`, {
        pool,
        method,
        headers: { 'content-type': type },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: 10_000,
      });
      return { code: answer.statusCode, json: JSON.parse(answer.text) as Json };
    },
    kubectl: async (args, input) => {
      if (!kubectlBinary.available) throw new Error(kubectlBinary.reason);
      const result = await execa(kubectlBinary.path('kubectl'), ['--kubeconfig', file('admin.conf'), ...args], {
        reject: false,
        timeout: 120_000,
        ...(input === undefined ? {} : { input }),
      });
      return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
    },
    close: async () => {
      await Promise.all([kill(manager), kill(apiserver)]);
      await pool.close();
    },
  };
}

/**
 * What the tests' workloads need before any pod: a Node object per name, `namespace`, and its
 * `default` ServiceAccount (what the serviceaccount controller would make; admission wants it).
 */
export async function nodesAndNamespace(server: RealApiServer, nodes: string[], namespace: string): Promise<void> {
  const create = async (pathname: string, name: string) => {
    const created = await server.call('POST', pathname, { metadata: { name } });
    if (created.code !== 201) throw new Error(`POST ${pathname} ${name}: ${created.code} ${JSON.stringify(created.json)}`);
  };
  for (const name of nodes) await create('/api/v1/nodes', name);
  await create('/api/v1/namespaces', namespace);
  await create(`/api/v1/namespaces/${namespace}/serviceaccounts`, 'default');
}

/**
 * A stand-in for the kubelets' part in a pod's deletion, as no kubelet runs here: every pod of
 * `namespace` being deleted is confirmed gone (grace period 0), until stopped.
 */
export function standinKubelets(server: RealApiServer, namespace: string): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const pods = ((await server.call('GET', `/api/v1/namespaces/${namespace}/pods`)).json.items ?? []) as Json[];
      for (const pod of pods.filter((p) => p.metadata.deletionTimestamp))
        await server.call('DELETE', `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}?gracePeriodSeconds=0`);
      await sleep(100);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/**
 * A pod of `namespace` on `node`, owned by `owner` (a ReplicaSet unless said otherwise), made
 * Running and Ready as its kubelet would report it.
 */
export async function runningPod(
  server: RealApiServer,
  namespace: string,
  name: string,
  node: string,
  owner: { kind: string; name: string } = { kind: 'ReplicaSet', name: 'web-5d8f' },
): Promise<void> {
  const created = await server.call('POST', `/api/v1/namespaces/${namespace}/pods`, {
    metadata: {
      name,
      labels: { app: owner.kind === 'DaemonSet' ? 'logs' : 'web' },
      ownerReferences: [{ apiVersion: 'apps/v1', ...owner, uid: '00000000-0000-0000-0000-000000000001', controller: true }],
    },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10.2' }] },
  });
  if (created.code !== 201) throw new Error(`pod ${name}: ${created.code} ${JSON.stringify(created.json)}`);
  const ready = { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
  const status = await server.call('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, ready, 'application/merge-patch+json');
  if (status.code !== 200) throw new Error(`pod ${name} status: ${status.code} ${JSON.stringify(status.json)}`);
}

/** Waits (bounded, 30 s) until the disruption controller has seen budget `name` and allows `disruptions`. */
export async function budgetAllows(server: RealApiServer, namespace: string, name: string, disruptions: number): Promise<void> {
  for (let i = 0; i < 300; i += 1) {
    const budget = (await server.call('GET', `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/${name}`)).json;
    if (budget.status?.disruptionsAllowed === disruptions && budget.status?.observedGeneration === budget.metadata.generation) return;
    await sleep(100);
  }
  throw new Error(`budget ${name} never allowed ${disruptions} disruptions`);
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
