import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import type { AddressInfo, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { PkeError, errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { DataDir } from './store/data-dir.ts';
import { DEFAULT_LIMITS, LoadGate, type ControllerLimits } from './http/limits.ts';
import { caCertHash, issueCertificate } from './clusters/pki.ts';
import type { BoundRoute } from './http/route.ts';
import { createClusterRoute, listClustersRoute, showClusterRoute } from './routes/clusters.ts';
import { joinRoute } from './routes/join.ts';
import { livezRoute } from './routes/livez.ts';
import { claimLeaderRoute, leaderStateRoute } from './routes/leader.ts';
import { nodeConfigRoute, revokeRoute } from './routes/node-config.ts';
import { controlPlaneRoute, eventsRoute, joinedRoute, pkiRoute, readyRoute, registerRoute } from './routes/nodes.ts';
import { getVsphereRoute, setVsphereRoute } from './routes/vsphere.ts';
import { removeNodeRoute } from './routes/removals.ts';
import type { NodeMachines } from './day-two/machines.ts';
import type { RemovalOptions } from './day-two/node-removal.ts';
import { statusRoute } from './routes/status.ts';
import {
  claimBackupRoute,
  claimRenewalRoute,
  listBackupsRoute,
  reportCertificatesRoute,
  requestBackupRoute,
  uploadBackupRoute,
} from './routes/day-two.ts';
import { drainRoute, startUpgradeRoute, uncordonRoute, upgradedRoute, upgradeSlotRoute } from './routes/upgrade.ts';
import { scalePoolRoute } from './routes/pools.ts';
import { PoolReconciler, type ReconcilerOptions } from './pools/reconciler.ts';
import { ReplacementUpgrades } from './day-two/replacement-upgrade.ts';
import { ControllerRuntime } from './runtime.ts';
import { requestHandler } from './http/server.ts';
import { LongPollWakeups } from './formation/long-poll-wakeups.ts';
import { emptyState } from './store/state.ts';
import { StateStore } from './store/state-store.ts';
import type { ControllerStore } from './store/entities.ts';
import type { ClusterFiles } from './store/cluster-files.ts';
import type { EtcdOptions } from './store/etcd-backend.ts';
import type { CertifiedKey } from './clusters/pki.ts';
import { TokenAuthority } from './auth/tokens.ts';
import { ControllerMetrics } from './metrics/controller-metrics.ts';
import { createAccessTokenRoute, listAccessTokensRoute, revokeAccessTokenRoute } from './routes/access-tokens.ts';
import { metricsRoute, timelineRoute } from './routes/observability.ts';
import { viewClusterRoute, viewEventsRoute, viewIndexRoute, viewLoginRoute, viewLogoutRoute } from './routes/view.ts';

/** TLS 1.3's suites and TLS 1.2's AEAD suites for the ECDSA serving key: nothing with CBC or SHA-1 MACs. */
const AEAD_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
].join(':');

/** How long requests in flight may take to finish once the controller is asked to stop. */
const SHUTDOWN_GRACE_MS = 10_000;
/** The time a client has to send a whole request (at most MAX_BODY_BYTES): a slow one holds a connection no longer. */
const REQUEST_TIMEOUT_MS = 30_000;

const ROUTES: BoundRoute[] = [
  livezRoute,
  createClusterRoute,
  listClustersRoute,
  showClusterRoute,
  nodeConfigRoute,
  revokeRoute,
  removeNodeRoute,
  registerRoute,
  eventsRoute,
  joinedRoute,
  readyRoute,
  claimLeaderRoute,
  leaderStateRoute,
  pkiRoute,
  joinRoute,
  controlPlaneRoute,
  statusRoute,
  setVsphereRoute,
  getVsphereRoute,
  timelineRoute,
  createAccessTokenRoute,
  listAccessTokensRoute,
  revokeAccessTokenRoute,
  metricsRoute,
  viewIndexRoute,
  viewClusterRoute,
  viewEventsRoute,
  viewLoginRoute,
  viewLogoutRoute,
  reportCertificatesRoute,
  claimRenewalRoute,
  requestBackupRoute,
  listBackupsRoute,
  claimBackupRoute,
  uploadBackupRoute,
  startUpgradeRoute,
  upgradeSlotRoute,
  drainRoute,
  uncordonRoute,
  upgradedRoute,
  scalePoolRoute,
];

export interface ControllerOptions {
  dataDir: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Extra DNS names and IP addresses for the serving certificate. */
  sans?: string[];
  /** The URL node configs point at; default: https://<listen address or first non-loopback IPv4>:<port>. */
  advertiseUrl?: string;
  log: Logger;
  /** Check after every state write that each mutation touched what it changed (tests). */
  verifyStateTouches?: boolean;
  /** Caps on connections and long-polls; DEFAULT_LIMITS where not given. */
  limits?: Partial<ControllerLimits>;
  /** The other replicas' URLs, which node configs carry after advertiseUrl (and the serving certificate names). */
  peerUrls?: string[];
  /** Share state and secrets with other replicas through etcd instead of keeping them in the data dir. */
  etcd?: EtcdOptions;
  /** Provisioning's pace (tests make it quicker); its defaults otherwise. */
  provisioning?: Partial<ReconcilerOptions>;
  /** How node removals reach etcd and how long they wait (tests); defaults otherwise. */
  removals?: RemovalOptions;
  /** The VMs the controller provisioned (issue #15), which removals destroy. */
  machines?: NodeMachines;
}

export interface RunningController {
  /** Where this process listens, with the real port. */
  url: string;
  advertiseUrl: string;
  caCertFile: string;
  caCertPem: string;
  /** kubeadm-style pin of the serving CA: `sha256:` + hex SHA-256 of its SubjectPublicKeyInfo. */
  caPin: string;
  adminTokenFile: string;
  close(): Promise<void>;
}

/** Opens the data dir, loads or makes its keys and state, and serves the API over HTTPS. */
export async function startController(options: ControllerOptions): Promise<RunningController> {
  const dataDir = new DataDir(options.dataDir);
  await dataDir.ensure();
  await dataDir.lock();
  try {
    return await serve(dataDir, options);
  } catch (error) {
    await dataDir.unlock();
    throw error;
  }
}

/** Where state and secrets live: the data dir (one controller) or etcd (replicas). */
interface Backend {
  store: ControllerStore;
  files: ClusterFiles;
  ca: CertifiedKey;
  tokens: TokenAuthority;
  close(): Promise<void>;
}

async function openBackend(dataDir: DataDir, options: ControllerOptions): Promise<Backend> {
  if (options.etcd) {
    // Loaded only here: the etcd client (gRPC) costs a one-controller start nothing.
    const { openEtcdBackend } = await import('./store/etcd-backend.ts');
    const etcd = await openEtcdBackend(options.etcd, dataDir, options.log);
    return { ...etcd, files: etcd.secrets };
  }
  const ca = await dataDir.servingCa();
  const tokens = await TokenAuthority.fromSecret(await dataDir.signingKeyBytes());
  const store = await StateStore.open(dataDir.stateFile, () => emptyState(''), { verifyTouches: options.verifyStateTouches });
  await ensureAdminToken(dataDir, store, tokens);
  return { store, files: dataDir, ca, tokens, close: () => store.close() };
}

async function serve(dataDir: DataDir, options: ControllerOptions): Promise<RunningController> {
  const backend = await openBackend(dataDir, options);
  try {
    return await serveWith(dataDir, backend, options);
  } catch (error) {
    await backend.close();
    throw error;
  }
}

async function serveWith(dataDir: DataDir, backend: Backend, options: ControllerOptions): Promise<RunningController> {
  const { store, files, ca, tokens } = backend;

  const advertiseHost = options.advertiseUrl
    ? new URL(options.advertiseUrl).hostname.replace(/^\[|\]$/g, '')
    : defaultAdvertiseHost(options.host);
  const peerHosts = (options.peerUrls ?? []).map((url) => new URL(url).hostname.replace(/^\[|\]$/g, ''));
  const sans = servingNames(advertiseHost, [...(options.sans ?? []), ...peerHosts]);
  const serving = await issueCertificate(ca, {
    keyType: 'ecdsa',
    commonName: 'pke-controller',
    altNames: sans,
    usage: 'server',
    validDays: 365,
  });
  const server = createServer({
    key: serving.keyPem,
    cert: serving.certPem,
    minVersion: 'TLSv1.2',
    ciphers: AEAD_CIPHERS,
    // Both bound receiving a request, not answering it: a long-poll waits after its request is in.
    requestTimeout: REQUEST_TIMEOUT_MS,
    headersTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: 30_000,
  });
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const gate = new LoadGate(limits);
  // Past the cap a connection's requests are answered 503; past twice the cap it is dropped unanswered.
  server.maxConnections = 2 * limits.connections;
  server.on('connection', (socket: Socket) => socket.once('close', gate.connectionOpened()));
  const port = await listen(server, options.host, options.port);
  const advertiseUrl = options.advertiseUrl ?? `https://${urlHost(advertiseHost)}:${port}`;

  const runtime = new ControllerRuntime({
    store,
    wakeups: new LongPollWakeups(),
    tokens,
    dataDir: files,
    snapshots: dataDir,
    log: options.log,
    advertiseUrl,
    peerUrls: options.peerUrls,
    caCertPem: ca.certPem,
    metrics: new ControllerMetrics(() => store.state),
    viewChanges: new LongPollWakeups(),
    removals: options.removals,
    machines: options.machines,
  });
  for (const id of Object.keys(store.state.clusters)) runtime.pki.set(id, await files.readClusterPki(id));
  for (const cluster of Object.values(store.state.clusters)) runtime.armDeadlines(cluster);
  const pools = new PoolReconciler(runtime, options.provisioning);
  runtime.kickProvisioning = (cluster) => pools.kick(cluster);
  runtime.machines ??= pools;
  pools.start();
  const replacements = new ReplacementUpgrades(runtime, { intervalMs: pools.intervalMs });
  runtime.kickUpgrade = (cluster) => replacements.kick(cluster);
  replacements.start();
  runtime.removals.resumeAll();
  // A change through another replica wakes this one's long-polls as one of its own would.
  store.onRemoteChange((id) => {
    const cluster = store.state.clusters[id];
    if (cluster) runtime.changed(cluster);
    runtime.viewChanges.changed(id);
  });
  const handle = requestHandler(ROUTES, runtime, gate, {
    answered: (request) => {
      runtime.metrics.answered(request);
      // A request that changed a cluster (a node's report among them) updates the views watching it.
      if (request.cluster !== undefined && request.method === 'POST' && request.status < 300) runtime.viewChanges.changed(request.cluster);
    },
  });
  const inFlight = new Set<Promise<void>>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const done = new Promise<void>((resolve) => res.once('close', () => resolve()));
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
    handle(req, res);
  });

  let closed: Promise<void> | undefined;
  return {
    url: `https://${urlHost(options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host)}:${port}`,
    advertiseUrl,
    caCertFile: dataDir.caCert,
    caCertPem: ca.certPem,
    caPin: caCertHash(ca.certPem),
    adminTokenFile: dataDir.adminToken,
    close: () => {
      closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await replacements.close();
        await pools.close();
        // Wakes the long-polls, which answer 503 so that their clients ask again later.
        await runtime.close();
        await Promise.race([Promise.all(inFlight), delay(SHUTDOWN_GRACE_MS, undefined, { ref: false })]);
        // Keep-alive connections would hold the server open until they time out.
        server.closeAllConnections();
        await stopped;
        await backend.close();
        await dataDir.unlock();
      })();
      return closed;
    },
  };
}

/** Keeps admin.token if it is the current one; otherwise writes a new one and makes it current. */
async function ensureAdminToken(dataDir: DataDir, store: StateStore, tokens: TokenAuthority): Promise<void> {
  const existing = await dataDir.readAdminToken();
  if (existing) {
    const principal = await tokens.verify(existing).catch(() => undefined);
    if (principal?.kind === 'admin' && principal.jti === store.state.adminTokenId) return;
  }
  const admin = await tokens.mintAdminToken();
  await dataDir.writeAdminToken(admin.token);
  store.mutate((state, touch) => {
    state.adminTokenId = admin.jti;
    touch.root();
  });
  await store.durable();
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      reject(new PkeError(`cannot listen on ${host}:${port}: ${errorMessage(error)}`, { cause: error }));
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The names the controller is reached by: loopback (the CLI on its host), the address node configs carry, and the operator's --san values. */
function servingNames(advertiseHost: string, sans: string[]): string[] {
  return [...new Set(['localhost', '127.0.0.1', '::1', advertiseHost, ...sans])].filter(Boolean);
}

function defaultAdvertiseHost(listenHost: string): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return '127.0.0.1';
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
