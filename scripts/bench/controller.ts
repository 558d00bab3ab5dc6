// The controller under a 1000-node bootstrap: one controller process (the real CLI), 1 leader,
// 2 more control-plane nodes and 997 workers, ~100 at a time, each doing what a node's
// bootstrap does (register, claim, join, joined, events, ready) with the agent's own client over its
// own TLS connection, and the kube-apiserver stand-in (the real command) as the cluster API that
// join tokens are minted through. A trivial node:https server answering the same number of
// requests the same way is the baseline. The simulated nodes run on two worker threads, so
// that the load generator's own event loop does not add its lag to the latencies measured.
// The same formation then runs against three controller replicas sharing a real three-member
// etcd cluster (TLS), the nodes' first URLs dealt out over the replicas, side by side in one
// run; and the time nodes waiting on two replicas take to see a lease change made through the
// third.
//   node scripts/bench/controller.ts
import { ensureBuilt } from '../ensure-built.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { agentConfigSchema, type AgentConfig } from '../../agent/config/schema.ts';
import { createCa, issueCertificate } from '../../agent/controller/clusters/pki.ts';
import type { PhaseEvent } from '../../agent/protocol/api.ts';
import { AdminClient, createNodeClient, type NodeClient } from '../../agent/protocol/client.ts';
import { ControllerRequestError } from '../../agent/protocol/errors.ts';
import { adminKubeconfig, apiServerCredentials } from '../../test/standins/apiserver-standin.ts';
import { freePort } from '../free-port.ts';
import { controllerEtcdFlags, etcdBinary, startEtcdCluster, type EtcdCluster } from '../../test/helpers/etcd-cluster.ts';
import type { BenchMetric, BenchSection } from '../bench.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const NODES = 1000;
const MASTERS = 3;
const CONCURRENCY = 100;
const THREADS = 2;
const LONG_POLL_SECONDS = 30;
const TARGET_TOTAL_S = 10;
const TARGET_P99_MS = 250;
const TARGET_RSS_MB = 250;
/** The HA run: controller replicas sharing a three-member etcd cluster, no slower than 1.5 times one controller. */
const REPLICAS = 3;
const TARGET_HA_RATIO = 1.5;
/** Nodes long-polling the lease on the other replicas while it changes through the first. */
const LEASE_WAITERS = 100;
/** Control-plane joins wait, by design, for the one join slot: a long-poll, so no latency target. */
const WAITS_FOR_SLOT = 'join (control plane, waits for the join slot)';

/** What one load thread is asked to do. */
type ThreadJob =
  | {
      kind: 'nodes';
      configs: AgentConfig[];
      mastersFirst: number;
      concurrency: number;
      kubeconfig: string;
      initializedAt: SharedArrayBuffer;
    }
  | { kind: 'baseline'; url: string; caCert: string; perNode: number[]; concurrency: number };

/** What it reports back. Times are absolute (performance.timeOrigin + now, ms) so threads compare. */
interface ThreadReport {
  latencies: Record<string, number[]>;
  /** When each long-poll issued before the cluster was initialized got its answer. */
  longPollAnsweredAt: number[];
  requests: number;
}

export async function benchController(): Promise<BenchSection> {
  const work = mkdtempSync(path.join(tmpdir(), 'pke-bench-controller-'));
  const children: ChildProcess[] = [];
  let etcd: EtcdCluster | undefined;
  try {
    // The shipped executable, as operators run it.
    const executable = await ensureBuilt();
    const single = await runFormation({ work: path.join(work, 'single'), executable, children });
    const baseline = await runBaseline(work, single.requests, children);
    etcd = await startEtcdCluster();
    const ha = await runFormation({ work: path.join(work, 'ha'), executable, children, etcd, spread: true });
    // As an operator's node configs are: each names first the replica that rendered it (here all the first one), the others after.
    const rendered = await runFormation({ work: path.join(work, 'ha-rendered'), executable, children, etcd, spread: false });
    const wake = ha.leaseWake ?? [];

    const endpoints = [...single.latencies.entries()].map(([endpoint, values]) => ({
      endpoint,
      count: values.length,
      p50: percentile(values, 0.5),
      p99: percentile(values, 0.99),
    }));
    const haEndpoints = [...ha.latencies.entries()].map(([endpoint, values]) => ({
      endpoint,
      count: values.length,
      p50: percentile(values, 0.5),
      p99: percentile(values, 0.99),
    }));
    const HA = `${REPLICAS} replicas on etcd, nodes spread over them:`;
    const RENDERED = `${REPLICAS} replicas on etcd, first URL as rendered:`;
    const metrics: BenchMetric[] = [
      { name: `total, ${NODES} nodes`, value: single.totalMs / 1000, unit: 's', max: TARGET_TOTAL_S },
      ...endpoints.flatMap((e) => [
        { name: `${e.endpoint} p50`, value: e.p50, unit: 'ms' as const },
        { name: `${e.endpoint} p99`, value: e.p99, unit: 'ms' as const, ...(e.endpoint === WAITS_FOR_SLOT ? {} : { max: TARGET_P99_MS }) },
      ]),
      { name: 'long-poll wake after init p50', value: percentile(single.wakes, 0.5), unit: 'ms' },
      { name: 'long-poll wake after init p99', value: percentile(single.wakes, 0.99), unit: 'ms' },
      { name: 'controller peak RSS (VmHWM)', value: single.peakRssMb, unit: 'MB', max: TARGET_RSS_MB },
      { name: 'controller CPU during the run', value: single.cpu, unit: 's' },
      { name: 'requests', value: single.requests, unit: 'count' },
      { name: 'baseline node:https total', value: baseline.totalMs / 1000, unit: 's' },
      { name: 'baseline p50', value: baseline.p50, unit: 'ms' },
      { name: 'baseline p99', value: baseline.p99, unit: 'ms' },
      { name: 'baseline server CPU', value: baseline.serverCpu, unit: 's' },
      { name: 'controller / baseline total', value: single.totalMs / baseline.totalMs, unit: 'x' },
      { name: `render ${NODES} node configs (setup)`, value: single.renderMs / 1000, unit: 's' },
      { name: `${HA} total, ${NODES} nodes`, value: ha.totalMs / 1000, unit: 's' },
      { name: `${HA} total / one controller on its data dir`, value: ha.totalMs / single.totalMs, unit: 'x', max: TARGET_HA_RATIO },
      ...haEndpoints.flatMap((e) => [
        { name: `${HA} ${e.endpoint} p50`, value: e.p50, unit: 'ms' as const },
        { name: `${HA} ${e.endpoint} p99`, value: e.p99, unit: 'ms' as const },
      ]),
      { name: `${HA} long-poll wake after init p50`, value: percentile(ha.wakes, 0.5), unit: 'ms' },
      { name: `${HA} long-poll wake after init p99`, value: percentile(ha.wakes, 0.99), unit: 'ms' },
      { name: `${HA} lease change seen through another replica p50`, value: percentile(wake, 0.5), unit: 'ms' },
      { name: `${HA} lease change seen through another replica p99`, value: percentile(wake, 0.99), unit: 'ms' },
      { name: `${HA} replicas' CPU during the run`, value: ha.cpu, unit: 's' },
      { name: `${HA} etcd members' CPU during the run`, value: ha.etcdCpu ?? 0, unit: 's' },
      { name: `${HA} largest replica peak RSS (VmHWM)`, value: ha.peakRssMb, unit: 'MB', max: TARGET_RSS_MB },
      { name: `${HA} requests`, value: ha.requests, unit: 'count' },
      { name: `${HA} bootstrap tokens minted (${NODES - 1} joins)`, value: ha.secrets, unit: 'count' },
      { name: `${RENDERED} total, ${NODES} nodes`, value: rendered.totalMs / 1000, unit: 's' },
      {
        name: `${RENDERED} total / one controller on its data dir`,
        value: rendered.totalMs / single.totalMs,
        unit: 'x',
        max: TARGET_HA_RATIO,
      },
      { name: `${RENDERED} register p99`, value: percentile(rendered.latencies.get('register') ?? [], 0.99), unit: 'ms' },
      { name: `${RENDERED} join p99`, value: percentile(rendered.latencies.get('join') ?? [], 0.99), unit: 'ms' },
      { name: `${RENDERED} replicas' CPU during the run`, value: rendered.cpu, unit: 's' },
      { name: `${RENDERED} etcd members' CPU during the run`, value: rendered.etcdCpu ?? 0, unit: 's' },
      { name: `${RENDERED} bootstrap tokens minted (${NODES - 1} joins)`, value: rendered.secrets, unit: 'count' },
    ];
    return {
      name: 'controller',
      summary: `${NODES} simulated nodes (${MASTERS} control plane), ${CONCURRENCY} at a time on ${THREADS} threads, tokens minted through the kube-apiserver stand-in: against one controller process on its data dir, then against ${REPLICAS} replicas sharing a ${REPLICAS}-member etcd cluster (TLS) in the same run, the nodes' first URLs spread over the replicas, then all on the replica that rendered the configs`,
      metrics,
      details: {
        endpoints,
        haEndpoints,
        longPollWakes: single.wakes.length,
        haLongPollWakes: ha.wakes.length,
        leaseWakeWaiters: wake.length,
        nodesReady: single.ready,
        haNodesReady: ha.ready,
        bootstrapTokensMinted: single.secrets,
        concurrency: CONCURRENCY,
        threads: THREADS,
        etcd: etcdBinary(),
      },
    };
  } finally {
    for (const child of children) kill(child);
    await etcd?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

interface FormationRun {
  totalMs: number;
  latencies: Map<string, number[]>;
  wakes: number[];
  requests: number;
  cpu: number;
  peakRssMb: number;
  renderMs: number;
  ready: number;
  secrets: number;
  etcdCpu?: number;
  /** With etcd: when each node waiting on another replica saw a lease change made through the first (ms). */
  leaseWake?: number[];
}

/**
 * One 1000-node formation: against one controller on its data dir, or (with `etcd`) against
 * REPLICAS replicas sharing it, the nodes' configs dealt out so that each replica is some
 * nodes' first URL. The controllers are stopped at the end.
 */
async function runFormation(options: {
  work: string;
  executable: string;
  children: ChildProcess[];
  etcd?: EtcdCluster;
  /** Deal the nodes' first URLs out over the replicas (the worst case: every replica writes the same cluster at once). */
  spread?: boolean;
}): Promise<FormationRun> {
  const { work, executable, etcd } = options;
  mkdirSync(work, { recursive: true });
  const own: ChildProcess[] = [];
  try {
    const count = etcd ? REPLICAS : 1;
    const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
    const urls = ports.map((port) => `https://127.0.0.1:${port}`);
    // Each run its own state in the one etcd cluster.
    const etcdArgs = etcd ? controllerEtcdFlags(etcd, `/bench-${path.basename(work)}/`) : [];
    const controllers = await Promise.all(
      urls.map(async (url, i) => {
        const peers = etcd ? urls.filter((_, j) => j !== i).flatMap((peer) => ['--peer-url', peer]) : [];
        const started = await startChild(
          [
            'controller',
            'serve',
            '--json',
            '--data-dir',
            path.join(work, `data-${i}`),
            '--listen',
            `127.0.0.1:${ports[i]}`,
            '--advertise-url',
            url,
            ...peers,
            ...etcdArgs,
          ],
          path.join(work, `controller-${i}.log`),
          /"listening"/,
          {},
          executable,
        );
        own.push(started.child);
        options.children.push(started.child);
        return started;
      }),
    );
    const first = controllers[0];
    if (!first) throw new Error('no controller started');
    const listening = JSON.parse(first.line) as { url: string; caCertFile: string; adminTokenFile: string };
    const caCert = readFileSync(listening.caCertFile, 'utf8');
    const admin = new AdminClient({ url: listening.url, caCert, token: readFileSync(listening.adminTokenFile, 'utf8').trim() });
    // The cluster's endpoint is where its API server stand-in listens: the controller takes admin.conf for that endpoint only.
    const cluster = await admin.createCluster({
      name: 'bench',
      kubernetesVersion: '1.31.2',
      controlPlaneEndpoint: { vip: '127.0.0.1', port: await freePort() },
    });

    // Operator side, not timed with the nodes: render every node's guestinfo.
    const names = Array.from({ length: NODES }, (_, i) =>
      i < MASTERS ? `master-${i + 1}` : `worker-${String(i - MASTERS + 1).padStart(4, '0')}`,
    );
    const renderStarted = performance.now();
    const rendered = await inPool(names, 20, async (name, i) =>
      agentConfigOf(await admin.nodeConfig(cluster.id, { name, role: i < MASTERS ? 'master' : 'worker' })),
    );
    const renderMs = performance.now() - renderStarted;
    // Node i asks replica i mod REPLICAS first, as if its config had been rendered there.
    const configs = options.spread ? rendered.map((config, i) => startingAt(config, urls, i)) : rendered;

    const apiServer = await startClusterApi(configs[0], work);
    own.push(apiServer.child);
    options.children.push(apiServer.child);

    // Thread 0 runs the control plane first; the workers are dealt out round-robin.
    const initializedAt = new SharedArrayBuffer(8);
    const shares: AgentConfig[][] = Array.from({ length: THREADS }, (_, t) => (t === 0 ? configs.slice(0, MASTERS) : []));
    for (const [i, config] of configs.slice(MASTERS).entries()) shares[i % THREADS]?.push(config);
    const threads = await Promise.all(
      shares.map((share, t) =>
        startThread({
          kind: 'nodes',
          configs: share,
          mastersFirst: t === 0 ? MASTERS : 0,
          concurrency: CONCURRENCY / THREADS,
          kubeconfig: apiServer.kubeconfig,
          initializedAt,
        }),
      ),
    );
    const pids = controllers.map((c) => c.child.pid);
    const etcdPids = etcd?.members.map((m) => m.child?.pid) ?? [];
    const cpuBefore = sum(pids.map(cpuTime));
    const etcdCpuBefore = sum(etcdPids.map(cpuTime));
    const started = now();
    const reports = await Promise.all(threads.map((go) => go()));
    const totalMs = now() - started;
    const cpu = sum(pids.map(cpuTime)) - cpuBefore;
    const etcdCpu = sum(etcdPids.map(cpuTime)) - etcdCpuBefore;
    const peakRssMb = Math.max(...pids.map(peakRss));

    const status = await admin.status(cluster.id);
    const ready = status.nodes.filter((n) => n.state === 'ready').length;
    const secrets = readdirSync(path.join(apiServer.stateDir, 'secrets', 'kube-system')).length;
    // Replicas run a request that lost a race again, and a join that runs again mints again: more tokens than joins is what that costs.
    if (ready !== NODES || (etcd ? secrets < NODES - 1 : secrets !== NODES - 1))
      throw new Error(`bench run incomplete: ${ready}/${NODES} nodes ready, ${secrets} bootstrap tokens minted`);
    const leaseWake = etcd && options.spread ? await leaseChangeWake(admin, urls) : undefined;
    await admin.close();

    const initAt = Number(new BigInt64Array(initializedAt)[0]) / 1000;
    const wakes = reports.flatMap((r) => r.longPollAnsweredAt.map((at) => Math.max(0, at - initAt)));
    const latencies = new Map<string, number[]>();
    for (const report of reports)
      for (const [endpoint, values] of Object.entries(report.latencies))
        latencies.set(endpoint, [...(latencies.get(endpoint) ?? []), ...values]);
    const requests = reports.reduce((total, r) => total + r.requests, 0);
    return { totalMs, latencies, wakes, requests, cpu, peakRssMb, renderMs, ready, secrets, ...(etcd ? { etcdCpu, leaseWake } : {}) };
  } finally {
    for (const child of own) kill(child);
  }
}

/** The config with `urls[i mod n]` first and the other replicas after it. */
function startingAt(config: AgentConfig, urls: string[], i: number): AgentConfig {
  if (urls.length < 2) return config;
  const url = urls[i % urls.length] as string;
  return { ...config, controller: { ...config.controller, url, otherUrls: urls.filter((other) => other !== url) } };
}

/**
 * A leader holds the lease of a second cluster through the first replica; LEASE_WAITERS nodes
 * long-poll its state on the other replicas; the admin revokes the leader through the first
 * replica. Returns, for each waiter, the time from the revocation's answer to its own.
 */
async function leaseChangeWake(admin: AdminClient, urls: string[]): Promise<number[]> {
  const cluster = await admin.createCluster({
    name: 'lease-wake',
    kubernetesVersion: '1.31.2',
    controlPlaneEndpoint: { vip: '127.0.0.1', port: await freePort() },
  });
  const leaderConfig = agentConfigOf(await admin.nodeConfig(cluster.id, { name: 'leader', role: 'master' }));
  const leader = createNodeClient(startingAt(leaderConfig, urls, 0));
  const claim = await leader.claimLeader({});
  const others = urls.slice(1);
  const waiters = await inPool(
    Array.from({ length: LEASE_WAITERS }, (_, i) => `waiter-${i + 1}`),
    20,
    async (name, i) => createNodeClient(startingAt(agentConfigOf(await admin.nodeConfig(cluster.id, { name, role: 'master' })), others, i)),
  );
  try {
    const answered = waiters.map((client) =>
      client.leaderState({ waitSeconds: LONG_POLL_SECONDS, known: { epoch: claim.epoch, initialized: false } }).then((state) => {
        if (state.holder !== undefined) throw new Error(`a waiter was answered before the lease changed (holder ${state.holder})`);
        return now();
      }),
    );
    // The long-polls are in: each replica holds them (waiting is idle, so a pause is enough to be sure).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await admin.revoke(cluster.id, { node: 'leader' });
    const revokedAt = now();
    return (await Promise.all(answered)).map((at) => at - revokedAt);
  } finally {
    await Promise.all([leader, ...waiters].map((client) => client.close()));
  }
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

// --- load threads ------------------------------------------------------------------------------

/**
 * Starts a load thread and waits until it has loaded its modules; the returned function sets
 * it going and resolves with its report. Loading stays outside the time measured.
 */
async function startThread(job: ThreadJob): Promise<() => Promise<ThreadReport>> {
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  const failed = new Promise<never>((_, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`load thread exited ${code} before it reported`)));
  });
  const message = () => Promise.race([new Promise<unknown>((resolve) => worker.once('message', resolve)), failed]);
  await message();
  return async () => {
    const report = message() as Promise<ThreadReport>;
    worker.postMessage('go');
    return report;
  };
}

async function threadMain(job: ThreadJob): Promise<ThreadReport> {
  const report: ThreadReport = { latencies: {}, longPollAnsweredAt: [], requests: 0 };
  if (job.kind === 'baseline') {
    await baselineLoad(job, report);
    return report;
  }
  const initializedAt = new BigInt64Array(job.initializedAt);
  const clock = {
    initialized: () => initializedAt[0] !== 0n,
    markInitialized: () => {
      initializedAt[0] = BigInt(Math.round(now() * 1000));
    },
  };
  await inPool(job.configs, job.concurrency, (config, i) =>
    i < job.mastersFirst ? runMaster(config, report, clock, job.kubeconfig) : runWorker(config, report, clock),
  );
  return report;
}

interface LeaderClock {
  initialized(): boolean;
  markInitialized(): void;
}

/** The leader claims, inits and reports joined; the others wait for it, then join (control plane one at a time). */
async function runMaster(config: AgentConfig, report: ThreadReport, clock: LeaderClock, kubeconfig: string): Promise<void> {
  const client = createNodeClient(config);
  try {
    await timed(report, 'register', () => client.register(registration(config)));
    const claim = await timed(report, 'claim', () => client.claimLeader({}));
    if (claim.granted) {
      await timed(report, 'join (init)', () => client.join({ epoch: claim.epoch }));
      await timed(report, 'events', () => client.events({ events: phaseEvents(['preflight', 'register', 'elect', 'certs', 'kube-init']) }));
      await timed(report, 'joined (leader)', () => client.joined({ epoch: claim.epoch, adminKubeconfig: kubeconfig }));
      clock.markInitialized();
      await timed(report, 'ready', () => client.ready({}));
      return;
    }
    let known = { epoch: claim.epoch, initialized: claim.initialized };
    for (let attempt = 0; attempt < 10 && !known.initialized; attempt += 1) {
      const state = await longPoll(report, clock, () => client.leaderState({ waitSeconds: LONG_POLL_SECONDS, known }));
      known = { epoch: state.epoch, initialized: state.initialized };
    }
    await joinWhenAllowed(client, report, clock);
    await timed(report, 'joined', () => client.joined({}));
    await timed(report, 'events', () => client.events({ events: phaseEvents(['preflight', 'register', 'elect', 'certs', 'kube-join']) }));
    await timed(report, 'ready', () => client.ready({}));
  } finally {
    await client.close();
  }
}

async function runWorker(config: AgentConfig, report: ThreadReport, clock: LeaderClock): Promise<void> {
  const client = createNodeClient(config);
  try {
    await timed(report, 'register', () => client.register(registration(config)));
    await joinWhenAllowed(client, report, clock);
    await timed(report, 'joined', () => client.joined({}));
    await timed(report, 'events', () => client.events({ events: phaseEvents(['preflight', 'register', 'host-prep', 'kube-join']) }));
    await timed(report, 'ready', () => client.ready({}));
  } finally {
    await client.close();
  }
}

/**
 * A join asked before the cluster is initialized is a long-poll (its wake-up is measured); after, it is
 * an ordinary call, except on control plane, where it may wait for the join slot.
 */
async function joinWhenAllowed(client: NodeClient, report: ThreadReport, clock: LeaderClock): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const ask = () => client.join({}, { waitSeconds: LONG_POLL_SECONDS });
    try {
      if (!clock.initialized()) await longPoll(report, clock, ask);
      else await timed(report, client.node.startsWith('master') ? WAITS_FOR_SLOT : 'join', ask);
      return;
    } catch (error) {
      if (!(error instanceof ControllerRequestError) || error.context.status !== 409) throw error;
    }
  }
  throw new Error(`${client.node}: no join grant after 5 long-polls`);
}

async function timed<T>(report: ThreadReport, endpoint: string, call: () => Promise<T>): Promise<T> {
  const started = now();
  const answer = await call();
  (report.latencies[endpoint] ??= []).push(now() - started);
  report.requests += 1;
  return answer;
}

async function longPoll<T>(report: ThreadReport, clock: LeaderClock, call: () => Promise<T>): Promise<T> {
  const answer = await call();
  report.requests += 1;
  if (clock.initialized()) report.longPollAnsweredAt.push(now());
  return answer;
}

function registration(config: AgentConfig) {
  const ip = `10.99.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250) + 1}`;
  return { uuid: `bench-${config.nodeName}`, hostname: config.nodeName ?? '', ips: [ip], primaryIp: ip, agentVersion: 'bench' };
}

function phaseEvents(phases: string[]): PhaseEvent[] {
  const at = new Date().toISOString();
  return phases.flatMap((phase) => [
    { phase, type: 'start' as const, at, attempt: 1 },
    { phase, type: 'end' as const, at, attempt: 1 },
  ]);
}

// --- baseline -------------------------------------------------------------------------------------

/** The same number of requests, concurrency and threads, one TLS connection per simulated node, against a server that only answers `{}`. */
async function runBaseline(
  work: string,
  requests: number,
  children: ChildProcess[],
): Promise<{ totalMs: number; p50: number; p99: number; serverCpu: number }> {
  const ca = await createCa('bench-baseline-ca');
  const cert = await issueCertificate(ca, { commonName: 'baseline', altNames: ['127.0.0.1'], usage: 'server', validDays: 1 });
  const script = [
    "import { createServer } from 'node:https';",
    'const server = createServer({ key: process.env.KEY, cert: process.env.CERT }, (req, res) => {',
    "  req.resume(); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}'); });",
    '});',
    "server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));",
  ].join('\n');
  const server = await startChild(['--input-type=module', '-e', script], path.join(work, 'baseline.log'), /^listening /, {
    KEY: cert.keyPem,
    CERT: cert.certPem,
  });
  children.push(server.child);
  const url = `https://127.0.0.1:${server.line.replace(/^listening /, '')}`;
  const perNode = Array.from({ length: NODES }, (_, i) => Math.floor(requests / NODES) + (i < requests % NODES ? 1 : 0));
  const shares: number[][] = Array.from({ length: THREADS }, () => []);
  for (const [i, count] of perNode.entries()) shares[i % THREADS]?.push(count);
  const threads = await Promise.all(
    shares.map((share) => startThread({ kind: 'baseline', url, caCert: ca.certPem, perNode: share, concurrency: CONCURRENCY / THREADS })),
  );
  const cpuBefore = cpuTime(server.child.pid);
  const started = now();
  const reports = await Promise.all(threads.map((go) => go()));
  const totalMs = now() - started;
  const latencies = reports.flatMap((r) => r.latencies.baseline ?? []);
  return { totalMs, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), serverCpu: cpuTime(server.child.pid) - cpuBefore };
}

async function baselineLoad(job: Extract<ThreadJob, { kind: 'baseline' }>, report: ThreadReport): Promise<void> {
  const secureContext = createSecureContext({ ca: job.caCert });
  const body = JSON.stringify({ uuid: 'bench', hostname: 'bench', ips: ['10.0.0.1'], primaryIp: '10.0.0.1', agentVersion: 'bench' });
  await inPool(job.perNode, job.concurrency, async (count) => {
    const dispatcher = new Agent({ connect: { secureContext } });
    try {
      for (let i = 0; i < count; i += 1) {
        await timed(report, 'baseline', async () => {
          const answer = await request(job.url, {
            method: 'POST',
            dispatcher,
            body,
            headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
          });
          return answer.body.text();
        });
      }
    } finally {
      await dispatcher.close();
    }
  });
}

// --- helpers ------------------------------------------------------------------------------------

function agentConfigOf(rendered: { guestinfo: Record<string, string> }): AgentConfig {
  const text = gunzipSync(Buffer.from(rendered.guestinfo['guestinfo.pke.config'] ?? '', 'base64')).toString('utf8');
  return agentConfigSchema.parse(JSON.parse(text));
}

/** The API server stand-in as kubeadm init would leave it: serving cert and admin.conf from the cluster CA. */
async function startClusterApi(master: AgentConfig | undefined, work: string) {
  if (!master) throw new Error('no control-plane node config');
  const client = createNodeClient(master);
  const pki = await client.pki();
  await client.close();
  const ca = { certPem: pki.files['ca.crt'] ?? '', keyPem: pki.files['ca.key'] ?? '' };
  const { serving, admin } = await apiServerCredentials(ca);
  const file = (name: string, text: string) => {
    writeFileSync(path.join(work, name), text, { mode: 0o600 });
    return path.join(work, name);
  };
  const stateDir = path.join(work, 'apiserver');
  const args = [
    path.join(repo, 'test/standins/apiserver-standin.ts'),
    '--listen',
    `${master.controlPlaneEndpoint.vip}:${master.controlPlaneEndpoint.port}`,
    '--cert',
    file('apiserver.crt', serving.certPem),
    '--key',
    file('apiserver.key', serving.keyPem),
    '--client-ca',
    file('ca.crt', ca.certPem),
    '--state-dir',
    stateDir,
    '--nodes-dir',
    path.join(work, 'nodes'),
    '--version',
    'v1.31.2',
  ];
  const started = await startChild(args, path.join(work, 'apiserver.log'), /^listening /);
  const url = started.line.replace(/^listening /, '');
  return { child: started.child, stateDir, kubeconfig: adminKubeconfig(url, ca.certPem, admin) };
}

/** Runs `task` over `items`, at most `limit` at a time; results in item order. */
async function inPool<T, R>(items: T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
}

/** Wall-clock milliseconds that compare across threads. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Peak resident set size of a process, from /proc/PID/status (VmHWM, kB), in MB. */
function peakRss(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return kb / 1024;
}

/** User plus system CPU seconds of a process so far, from /proc/PID/stat (fields 14 and 15). */
function cpuTime(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A child process (Node unless `command` says otherwise) whose stdout is watched for `ready`; stderr goes to `logFile`. */
async function startChild(
  args: string[],
  logFile: string,
  ready: RegExp,
  env: Record<string, string> = {},
  command = process.execPath,
): Promise<{ child: ChildProcess; line: string }> {
  const log = openSync(logFile, 'w');
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', log], env: { ...process.env, ...env } });
  closeSync(log);
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start within 30 s; see ${logFile}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const found = out.split('\n').find((l) => ready.test(l));
      if (found) {
        clearTimeout(timer);
        resolve(found.trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited ${code} before it was ready; see ${logFile}`));
    });
  });
  return { child, line };
}

function kill(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
}

if (!isMainThread) {
  const port = parentPort;
  if (!port) throw new Error('a load thread needs its parent port');
  port.postMessage('loaded');
  await new Promise((resolve) => port.once('message', resolve));
  port.postMessage(await threadMain(workerData as ThreadJob));
} else if (import.meta.main) {
  const section = await benchController();
  for (const m of section.metrics)
    console.log(`${m.name.padEnd(44)} ${m.value.toFixed(2)} ${m.unit}${m.max === undefined ? '' : ` (target <= ${m.max})`}`);
}
