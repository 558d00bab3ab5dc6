// STAND-IN for kube-apiserver, for tests and the lab only. It acts out what the controller and
// the nodes can see of a real API server: /livez, /readyz and /version; bootstrap-token
// Secrets in kube-system (created with a client certificate signed by the cluster CA, checked
// for the shape kubeadm gives them, kept as JSON files under the state dir); and the Nodes the
// kubeadm stand-in's kubelets registered under the nodes dir, Ready (GET, same credentials),
// cordoned (PATCH spec.unschedulable) and deleted (DELETE), each with the version its kubelet
// recorded (status.nodeInfo.kubeletVersion); ConfigMaps in kube-system (POST, GET, and PUT
// checked against the resourceVersion, one that changes nothing writing nothing, as the real
// server does: kubeadm's kubeadm-config); and, for drains, pods, PodDisruptionBudgets and
// evictions (apiserver-standin-workloads.ts). The
// ConfigMaps and workloads are kept beside the nodes dir: all the cluster's API servers see
// them, as all real ones see etcd (a control-plane join reads kubeadm-config through whichever
// API server holds the VIP).
//
//   node test/standins/apiserver-standin.ts --listen HOST:PORT --cert FILE --key FILE \
//     --client-ca FILE --state-dir DIR --nodes-dir DIR --version v1.31.2 [--pid-file FILE] [--listen-at MS]
//
// serves until SIGTERM. It listens from --listen-at on (Date.now() milliseconds: kubeadm's stand-in
// passes the end of its init or join), then prints `listening https://HOST:PORT` on stdout.
// kubeadm's stand-in starts it from its bundle (.cache/standins/apiserver-standin.mjs, made by
// scripts/build-standins.mjs) when it runs from its own.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { CertifiedKey } from '../../agent/controller/clusters/pki.ts';
import { renderKubeconfig } from './standin-kubeconfig.ts';
import { handleWorkloads, isWorkloadPath } from './apiserver-standin-workloads.ts';

export interface ApiServerStandinOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** PEM of the serving certificate and key. */
  cert: string;
  key: string;
  /** PEM of the CA that client certificates must be signed by (the cluster CA). */
  clientCa: string;
  stateDir: string;
  /** Where the cluster's kubelets registered their Nodes (NAME.json); shared by its API servers. */
  nodesDir: string;
  /** Kubernetes version with the leading v, as /version reports it. */
  version: string;
}

export interface ApiServerStandin {
  url: string;
  close(): Promise<void>;
}

const SECRETS_PATH = '/api/v1/namespaces/kube-system/secrets';
const NODES_PATH = '/api/v1/nodes';
const CONFIGMAPS_PATH = '/api/v1/namespaces/kube-system/configmaps';
/** A Kubernetes object name (a DNS subdomain): also what keeps a name from the URL a plain file name. */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const MAX_BODY = 1024 * 1024;

export async function startApiServerStandin(options: ApiServerStandinOptions): Promise<ApiServerStandin> {
  const secretsDir = path.join(options.stateDir, 'secrets', 'kube-system');
  mkdirSync(secretsDir, { recursive: true });
  const server: Server = createServer(
    { cert: options.cert, key: options.key, ca: options.clientCa, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      handle(req, res, options, secretsDir).catch((error: unknown) => {
        if (!res.headersSent) status(res, 500, 'InternalError', error instanceof Error ? error.message : String(error));
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `https://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: ApiServerStandinOptions, secretsDir: string): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://standin');
  if (req.method === 'GET' && (url.pathname === '/livez' || url.pathname === '/readyz' || url.pathname === '/healthz')) {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.method === 'GET' && url.pathname === '/version') {
    const [major, minor] = options.version.replace(/^v/, '').split('.');
    json(res, 200, { major, minor, gitVersion: options.version, platform: 'linux/amd64', note: 'pke apiserver stand-in' });
    return;
  }
  const isSecrets = url.pathname === SECRETS_PATH || url.pathname.startsWith(`${SECRETS_PATH}/`);
  const isNode = url.pathname.startsWith(`${NODES_PATH}/`);
  const isWorkload = isWorkloadPath(url.pathname);
  const isConfigMap = url.pathname === CONFIGMAPS_PATH || url.pathname.startsWith(`${CONFIGMAPS_PATH}/`);
  if (!isSecrets && !isNode && !isWorkload && !isConfigMap) {
    status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    return;
  }
  if (!(req.socket as TLSSocket).authorized) {
    status(res, 401, 'Unauthorized', 'Unauthorized: a client certificate signed by the cluster CA is required');
    return;
  }
  if (isWorkload) {
    const body = req.method === 'POST' ? await readBody(req) : undefined;
    const answer = handleWorkloads(req.method ?? 'GET', url, body, path.join(path.dirname(options.nodesDir), 'workloads'));
    json(res, answer.code, answer.body);
    return;
  }
  if (isConfigMap) {
    const body = req.method === 'POST' || req.method === 'PUT' ? await readBody(req) : undefined;
    const answer = handleConfigMap(req.method ?? 'GET', url.pathname, body, path.join(path.dirname(options.nodesDir), 'configmaps'));
    json(res, answer.code, answer.body);
    return;
  }
  if (isNode && (req.method === 'GET' || req.method === 'PATCH' || req.method === 'DELETE')) {
    const name = decodeURIComponent(url.pathname.slice(NODES_PATH.length + 1));
    const file = path.join(options.nodesDir, `${path.basename(name)}.json`);
    if (!existsSync(file)) {
      status(res, 404, 'NotFound', `nodes "${name}" not found`);
      return;
    }
    const registered = JSON.parse(readFileSync(file, 'utf8')) as { registeredAt: string; unschedulable?: boolean; kubeletVersion?: string };
    if (req.method === 'PATCH') {
      if (req.headers['content-type'] !== 'application/merge-patch+json') {
        status(res, 415, 'UnsupportedMediaType', `the stand-in takes merge patches only, not ${req.headers['content-type']}`);
        return;
      }
      const patch = (await readBody(req)) as { spec?: { unschedulable?: boolean } } | undefined;
      registered.unschedulable = patch?.spec?.unschedulable === true;
      writeFileSync(file, `${JSON.stringify(registered)}\n`);
    }
    if (req.method === 'DELETE') rmSync(file);
    json(res, 200, {
      kind: 'Node',
      apiVersion: 'v1',
      metadata: { name, creationTimestamp: registered.registeredAt },
      spec: registered.unschedulable ? { unschedulable: true } : {},
      status: {
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
        ...(registered.kubeletVersion ? { nodeInfo: { kubeletVersion: registered.kubeletVersion } } : {}),
      },
    });
    return;
  }
  if (req.method === 'POST' && url.pathname === SECRETS_PATH) {
    const body = await readBody(req);
    if (body === undefined) {
      status(res, 400, 'BadRequest', 'the body is not JSON');
      return;
    }
    const problems = bootstrapTokenProblems(body);
    if (problems.length > 0) {
      status(res, 422, 'Invalid', `Secret is invalid: ${problems.join('; ')}`);
      return;
    }
    const secret = body as { metadata: Record<string, unknown> };
    const name = String(secret.metadata.name);
    const file = path.join(secretsDir, `${name}.json`);
    if (existsSync(file)) {
      status(res, 409, 'AlreadyExists', `secrets "${name}" already exists`);
      return;
    }
    const stored = {
      ...secret,
      metadata: {
        ...secret.metadata,
        namespace: 'kube-system',
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    };
    writeFileSync(file, `${JSON.stringify(stored, null, 2)}\n`);
    json(res, 201, stored);
    return;
  }
  if ((req.method === 'GET' || req.method === 'DELETE') && url.pathname.startsWith(`${SECRETS_PATH}/`)) {
    const name = decodeURIComponent(url.pathname.slice(SECRETS_PATH.length + 1));
    const file = path.join(secretsDir, `${path.basename(name)}.json`);
    if (!existsSync(file)) {
      status(res, 404, 'NotFound', `secrets "${name}" not found`);
      return;
    }
    const secret = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    // As the API does: a DELETE answers with the object it removed.
    if (req.method === 'DELETE') rmSync(file);
    json(res, 200, secret);
    return;
  }
  status(res, 405, 'MethodNotAllowed', `${req.method} is not supported on ${url.pathname}`);
}

interface Answer {
  code: number;
  body: unknown;
}

type ConfigMap = { metadata: Record<string, unknown> } & Record<string, unknown>;

/**
 * ConfigMaps in kube-system, one JSON file each under `dir`: POST creates (409 AlreadyExists),
 * GET reads, PUT replaces. A PUT carrying a resourceVersion other than the stored one is refused
 * with 409 Conflict, as the real server's optimistic concurrency does; every write bumps it.
 */
function handleConfigMap(method: string, pathname: string, body: unknown, dir: string): Answer {
  const named = pathname.startsWith(`${CONFIGMAPS_PATH}/`) ? decodeURIComponent(pathname.slice(CONFIGMAPS_PATH.length + 1)) : undefined;
  if (named !== undefined && !OBJECT_NAME.test(named)) return failure(404, 'NotFound', `configmaps "${named}" not found`);
  const fileOf = (name: string) => path.join(dir, `${name}.json`);
  const stored = (name: string) => (existsSync(fileOf(name)) ? (JSON.parse(readFileSync(fileOf(name), 'utf8')) as ConfigMap) : undefined);
  const notFound = (name: string) => failure(404, 'NotFound', `configmaps "${name}" not found`, { name, kind: 'configmaps' });
  const write = (configMap: ConfigMap, previous: ConfigMap | undefined): Answer => {
    const name = String(configMap.metadata.name);
    const saved: ConfigMap = {
      ...configMap,
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        ...configMap.metadata,
        namespace: 'kube-system',
        uid: previous?.metadata.uid ?? randomUUID(),
        creationTimestamp: previous?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        resourceVersion: String(Number(previous?.metadata.resourceVersion ?? 0) + 1),
      },
    };
    mkdirSync(dir, { recursive: true });
    writeFileSync(fileOf(name), `${JSON.stringify(saved, null, 2)}\n`);
    return { code: previous ? 200 : 201, body: saved };
  };

  if (method === 'GET' && named !== undefined) {
    const configMap = stored(named);
    return configMap ? { code: 200, body: configMap } : notFound(named);
  }
  if (method !== 'POST' && method !== 'PUT') return failure(405, 'MethodNotAllowed', `${method} is not supported on ${pathname}`);
  if ((method === 'POST') !== (named === undefined)) return failure(405, 'MethodNotAllowed', `${method} is not supported on ${pathname}`);
  const problems = configMapProblems(body);
  if (problems.length > 0) return failure(422, 'Invalid', `ConfigMap is invalid: ${problems.join('; ')}`);
  const configMap = body as ConfigMap;
  const name = String(configMap.metadata.name);
  if (method === 'POST') {
    if (stored(name)) return failure(409, 'AlreadyExists', `configmaps "${name}" already exists`, { name, kind: 'configmaps' });
    return write(configMap, undefined);
  }
  if (name !== named) return failure(400, 'BadRequest', `the name of the object (${name}) does not match the name on the URL (${named})`);
  const previous = stored(name);
  if (!previous) return notFound(name);
  const sent = configMap.metadata.resourceVersion;
  // As the real server: no resourceVersion (or an empty one) is an unconditional update.
  if (sent !== undefined && sent !== '' && sent !== previous.metadata.resourceVersion) {
    return failure(
      409,
      'Conflict',
      `Operation cannot be fulfilled on configmaps "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, kind: 'configmaps' },
    );
  }
  // As the real server: an update that changes nothing writes nothing, and keeps the resourceVersion.
  if (sameContent(configMap, previous)) return { code: 200, body: previous };
  return write(configMap, previous);
}

/** Whether two ConfigMaps hold the same: what a PUT can change, the server's bookkeeping aside. */
function sameContent(a: ConfigMap, b: ConfigMap): boolean {
  const content = (configMap: ConfigMap) =>
    canonical({
      data: configMap.data ?? {},
      binaryData: configMap.binaryData ?? {},
      immutable: configMap.immutable ?? false,
      labels: configMap.metadata.labels ?? {},
      annotations: configMap.metadata.annotations ?? {},
    });
  return content(a) === content(b);
}

/** JSON with object keys sorted, for comparing content whatever the order it came in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null)
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

/** What is wrong with a ConfigMap sent to be stored; empty when nothing. */
function configMapProblems(body: unknown): string[] {
  if (typeof body !== 'object' || body === null) return ['the body is not a JSON object'];
  const configMap = body as Record<string, unknown>;
  const metadata = (configMap.metadata ?? {}) as Record<string, unknown>;
  const problems: string[] = [];
  if (configMap.apiVersion !== 'v1') problems.push('apiVersion must be v1');
  if (configMap.kind !== 'ConfigMap') problems.push('kind must be ConfigMap');
  if (typeof metadata.name !== 'string' || !OBJECT_NAME.test(metadata.name)) problems.push('metadata.name must be a DNS subdomain');
  if (metadata.namespace !== undefined && metadata.namespace !== 'kube-system') problems.push('metadata.namespace must be kube-system');
  if (metadata.resourceVersion !== undefined && typeof metadata.resourceVersion !== 'string')
    problems.push('metadata.resourceVersion must be a string');
  for (const [key, value] of Object.entries((configMap.data ?? {}) as Record<string, unknown>))
    if (typeof value !== 'string') problems.push(`data.${key} must be a string`);
  return problems;
}

/** A Kubernetes Status object, as the real API server answers errors. */
function failure(code: number, reason: string, message: string, details?: { name: string; kind: string }): Answer {
  return {
    code,
    body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code },
  };
}

/**
 * What kubeadm init would make from the cluster CA for this stand-in: the API server's serving
 * certificate (for 127.0.0.1, localhost and kubernetes) and the kubernetes-admin client
 * certificate (group system:masters) that admin.conf carries. The PKI code (and node-forge with
 * it) loads here, not when the stand-in runs as a server, which needs none of it.
 */
export async function apiServerCredentials(ca: CertifiedKey): Promise<{ serving: CertifiedKey; admin: CertifiedKey }> {
  const { issueCertificate } = await import('../../agent/controller/clusters/pki.ts');
  const [serving, admin] = await Promise.all([
    issueCertificate(ca, {
      commonName: 'kube-apiserver',
      altNames: ['127.0.0.1', 'localhost', 'kubernetes'],
      usage: 'server',
      validDays: 365,
    }),
    issueCertificate(ca, { commonName: 'kubernetes-admin', organizations: ['system:masters'], usage: 'client', validDays: 365 }),
  ]);
  return { serving, admin };
}

/**
 * The stand-in on a free loopback port with the certificates kubeadm would make from `ca`, its
 * state under `dir` (nodes in `dir/cluster/nodes`), and admin.conf for it.
 */
export async function startLoopbackApiServerStandin(
  ca: CertifiedKey,
  dir: string,
  version: string,
): Promise<{ standin: ApiServerStandin; kubeconfig: string }> {
  const { serving, admin } = await apiServerCredentials(ca);
  const standin = await startApiServerStandin({
    host: '127.0.0.1',
    port: 0,
    cert: serving.certPem,
    key: serving.keyPem,
    clientCa: ca.certPem,
    stateDir: path.join(dir, 'state'),
    nodesDir: path.join(dir, 'cluster', 'nodes'),
    version,
  });
  return { standin, kubeconfig: adminKubeconfig(standin.url, ca.certPem, admin) };
}

/** admin.conf as kubeadm writes it, for the cluster admin (group system:masters). */
export function adminKubeconfig(server: string, caPem: string, admin: CertifiedKey): string {
  return renderKubeconfig({ clusterName: 'kubernetes', server, user: 'kubernetes-admin', caPem, client: admin });
}

/** What is wrong with a Secret that should be a kubeadm bootstrap token; empty when nothing. */
function bootstrapTokenProblems(body: unknown): string[] {
  const problems: string[] = [];
  const secret = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const metadata = (secret.metadata ?? {}) as Record<string, unknown>;
  if (secret.apiVersion !== 'v1') problems.push('apiVersion must be v1');
  if (secret.kind !== 'Secret') problems.push('kind must be Secret');
  if (secret.type !== 'bootstrap.kubernetes.io/token') problems.push('type must be bootstrap.kubernetes.io/token');
  if (metadata.namespace !== undefined && metadata.namespace !== 'kube-system') problems.push('metadata.namespace must be kube-system');
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries((secret.data ?? {}) as Record<string, unknown>)) {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) problems.push(`data.${key} must be base64`);
    else data[key] = Buffer.from(value, 'base64').toString('utf8');
  }
  for (const [key, value] of Object.entries((secret.stringData ?? {}) as Record<string, unknown>)) data[key] = String(value);

  const id = data['token-id'];
  if (!id || !/^[a-z0-9]{6}$/.test(id)) problems.push('data.token-id must match [a-z0-9]{6}');
  if (!data['token-secret'] || !/^[a-z0-9]{16}$/.test(data['token-secret'])) problems.push('data.token-secret must match [a-z0-9]{16}');
  if (metadata.name !== `bootstrap-token-${id ?? ''}`) problems.push('metadata.name must be bootstrap-token-<token-id>');
  const expiration = data.expiration;
  if (expiration !== undefined) {
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(expiration)) problems.push('data.expiration must be RFC 3339');
    else if (Date.parse(expiration) <= Date.now()) problems.push('data.expiration is in the past');
  }
  const usages = Object.keys(data).filter((k) => k.startsWith('usage-bootstrap-'));
  if (usages.length === 0) problems.push('at least one usage-bootstrap-* key must be "true"');
  for (const usage of usages) if (data[usage] !== 'true') problems.push(`data.${usage} must be "true"`);
  const groups = data['auth-extra-groups'];
  if (groups !== undefined) {
    for (const group of groups.split(',')) {
      if (!/^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/.test(group))
        problems.push(`auth-extra-groups: ${group} must start with system:bootstrappers:`);
    }
  }
  return problems;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

/** A Kubernetes Status object, as the real API server answers errors. */
function status(res: ServerResponse, code: number, reason: string, message: string): void {
  const { body } = failure(code, reason, message);
  json(res, code, body);
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'client-ca': { type: 'string' },
      'state-dir': { type: 'string' },
      'nodes-dir': { type: 'string' },
      version: { type: 'string' },
      'pid-file': { type: 'string' },
      'listen-at': { type: 'string' },
    },
    strict: true,
  });
  const missing = ['listen', 'cert', 'key', 'client-ca', 'state-dir', 'nodes-dir', 'version'].filter(
    (name) => values[name as keyof typeof values] === undefined,
  );
  if (missing.length > 0) fail(`missing ${missing.map((m) => `--${m}`).join(', ')}`);
  const listen = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(values.listen ?? '');
  if (!listen) fail(`--listen: expected HOST:PORT, got ${values.listen}`);
  if (!/^v\d+\.\d+\.\d+/.test(values.version ?? '')) fail(`--version: expected e.g. v1.31.2, got ${values.version}`);
  const listenAt = Number(values['listen-at'] ?? 0);
  if (!Number.isFinite(listenAt)) fail(`--listen-at: expected milliseconds since the epoch, got ${values['listen-at']}`);
  const read = (flag: string, file: string | undefined) => {
    try {
      return readFileSync(file ?? '', 'utf8');
    } catch (error) {
      return fail(`${flag}: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  await sleep(Math.max(0, listenAt - Date.now()));
  const standin = await startApiServerStandin({
    host: listen[1] ?? listen[2] ?? '127.0.0.1',
    port: Number(listen[3]),
    cert: read('--cert', values.cert),
    key: read('--key', values.key),
    clientCa: read('--client-ca', values['client-ca']),
    stateDir: values['state-dir'] ?? '',
    nodesDir: values['nodes-dir'] ?? '',
    version: values.version ?? '',
  });
  const pidFile = values['pid-file'];
  if (pidFile) writeFileSync(pidFile, `${process.pid}\n`);
  process.stdout.write(`listening ${standin.url}\n`);
  const stop = async () => {
    await standin.close();
    if (pidFile) rmSync(pidFile, { force: true });
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

function fail(message: string): never {
  process.stderr.write(`apiserver-standin: ${message}\n`);
  process.exit(2);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
}
