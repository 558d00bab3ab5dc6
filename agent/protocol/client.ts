import { createSecureContext, type SecureContext } from 'node:tls';
import pRetry from 'p-retry';
import { ConnectionPool, request } from '../net/https.ts';
import { nodeName } from '../config/node-name.ts';
import type { AgentConfig } from '../config/schema.ts';
import { errorMessage } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { issuePath } from '../core/schema-issues.ts';
import { ControllerRequestError, knownErrorCode } from './errors.ts';
import {
  apiErrorSchema,
  type AccessToken,
  type AccessTokenList,
  type AccessTokenRequest,
  type Timeline,
  type BackupClaim,
  type BackupList,
  type BackupRecord,
  type BackupRequestResponse,
  type CertificatesReport,
  type ClusterList,
  type ClusterSpecInput,
  type ClusterStatus,
  type ClusterSummary,
  type ControlPlaneView,
  type EventsRequest,
  type JoinGrant,
  type JoinedRequest,
  type JoinRequest,
  type LeaderClaimRequest,
  type LeaderClaimResponse,
  type LeaderState,
  type NodeConfigRequest,
  type NodeConfigResponse,
  type NodeStatus,
  type PkiBundle,
  type ReadyRequest,
  type RegisterRequest,
  type RenewalClaim,
  type RemovalRequest,
  type RevocationRequest,
  type RevocationResponse,
  type VsphereCredentials,
  type VsphereCredentialsInput,
  type ScaleRequest,
} from './api.ts';
import { API, routePath, type PathParams, type RouteSpec, type SchemaInput, type SchemaOutput } from './routes.ts';
import type { NodeApi } from './node-api.ts';
import type { UpgradeRequest, UpgradeView } from './upgrade.ts';

/**
 * The HTTPS client of the controller API: TLS pinned to the controller's CA, bearer token,
 * answers validated against the protocol schemas. Connection errors and 5xx are retried with
 * capped exponential backoff and jitter; 4xx are not (a bad or expired token fails at once).
 */

export interface RetryOptions {
  /** Retries after the first attempt. */
  retries: number;
  minDelayMs: number;
  maxDelayMs: number;
}

export interface ClientOptions {
  url: string;
  /** More replicas of the same controller, tried in turn after `url` on a connection error or a 5xx. */
  otherUrls?: string[];
  /** PEM of the controller's CA: the only CA this client trusts. */
  caCert: string;
  token: string;
  log?: Logger;
  retry?: Partial<RetryOptions>;
  /** Timeout of an ordinary request; long-polls get their wait on top of it. */
  timeoutMs?: number;
  /** Aborts every request in flight and every backoff. */
  signal?: AbortSignal;
}

const DEFAULT_RETRY: RetryOptions = { retries: 6, minDelayMs: 250, maxDelayMs: 10_000 };
const DEFAULT_TIMEOUT_MS = 30_000;

interface CallOptions<Body> {
  body?: Body;
  /** Upload routes: the file that is the raw body. */
  bodyFile?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Long-poll wait in seconds: the request may take that long before the answer starts. */
  waitSeconds?: number;
}

export class ControllerTransport {
  /** Every replica's URL; `current` is the one that answered last. */
  private readonly urls: string[];
  private current = 0;
  private readonly token: string;
  private readonly pool: ConnectionPool;
  private readonly log: Logger;
  private readonly retry: RetryOptions;
  private readonly timeoutMs: number;
  private readonly signal: AbortSignal | undefined;

  constructor(options: ClientOptions) {
    this.urls = [options.url, ...(options.otherUrls ?? [])].map((url) => url.replace(/\/+$/, ''));
    this.token = options.token;
    this.pool = new ConnectionPool({ secureContext: secureContextFor(options.caCert) });
    this.log = options.log ?? silentLogger;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.signal = options.signal;
  }

  /** Calls `route` with its path parameters; the answer is validated against the route's answer schema. */
  async call<R extends RouteSpec>(
    route: R,
    params: PathParams<R['path']>,
    options: CallOptions<SchemaInput<R['body']>> = {},
  ): Promise<SchemaOutput<R['answer']>> {
    const path = routePath(route, params);
    const { method } = route;
    let attempts = 0;
    try {
      return await pRetry(
        () => {
          attempts += 1;
          return this.once(route, path, options);
        },
        {
          retries: this.retry.retries,
          factor: 2,
          minTimeout: this.retry.minDelayMs,
          maxTimeout: this.retry.maxDelayMs,
          randomize: true,
          signal: this.signal,
          shouldRetry: ({ error }) => retryable(error),
          onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
            if (retriesLeft > 0 && retryable(error)) {
              this.log.warn('controller.retry', { method, path, attempt: attemptNumber, error: errorMessage(error) });
            }
          },
        },
      );
    } catch (error) {
      if (error instanceof ControllerRequestError && attempts > 1 && retryable(error)) {
        error.message = `${error.message} (gave up after ${attempts} attempts)`;
      }
      throw error;
    }
  }

  /** The controller URL requests go to now. */
  get baseUrl(): string {
    return this.urls[this.current] ?? '';
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private async once<R extends RouteSpec>(route: R, path: string, options: CallOptions<unknown>): Promise<SchemaOutput<R['answer']>> {
    try {
      return await this.onceAt(route, path, options);
    } catch (error) {
      // Sticks to a replica that answers; the next attempt (after the usual backoff) asks the next one.
      if (this.urls.length > 1 && retryable(error)) this.current = (this.current + 1) % this.urls.length;
      throw error;
    }
  }

  private async onceAt<R extends RouteSpec>(route: R, path: string, options: CallOptions<unknown>): Promise<SchemaOutput<R['answer']>> {
    const { method } = route;
    const query = Object.entries(options.query ?? {}).filter(
      (entry): entry is [string, string | number | boolean] => entry[1] !== undefined,
    );
    const search = query.length > 0 ? `?${new URLSearchParams(query.map(([k, v]): [string, string] => [k, String(v)])).toString()}` : '';
    const timeout = this.timeoutMs + (options.waitSeconds ?? 0) * 1000;
    let answer;
    try {
      answer = await request(`${this.baseUrl}${path}${search}`, {
        method,
        pool: this.pool,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(options.bodyFile === undefined ? {} : { 'content-type': 'application/octet-stream' }),
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        bodyFile: options.bodyFile,
        timeoutMs: timeout,
        signal: this.signal,
      });
    } catch (error) {
      throw new ControllerRequestError(method, path, undefined, undefined, `no answer from ${this.baseUrl}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    const { text } = answer;
    if (answer.statusCode >= 200 && answer.statusCode < 300) {
      if (!route.answer) return undefined as SchemaOutput<R['answer']>;
      const parsed = route.answer.safeParse(text === '' ? undefined : safeJson(text));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ControllerRequestError(
          method,
          path,
          answer.statusCode,
          undefined,
          `unexpected answer (${(issue && issuePath(issue)) || 'body'}: ${issue?.message ?? 'invalid'})`,
        );
      }
      return parsed.data as SchemaOutput<R['answer']>;
    }
    const problem = apiErrorSchema.safeParse(safeJson(text));
    if (problem.success) {
      const { code, message, field } = problem.data.error;
      throw new ControllerRequestError(method, path, answer.statusCode, knownErrorCode(code), message, { field });
    }
    throw new ControllerRequestError(method, path, answer.statusCode, undefined, text.slice(0, 200) || '(empty body)');
  }
}

const secureContexts = new Map<string, SecureContext>();

/** One TLS context per pinned CA: making one parses the CA and costs more than the handshake's crypto. */
function secureContextFor(caCert: string): SecureContext {
  let context = secureContexts.get(caCert);
  if (!context) {
    context = createSecureContext({ ca: caCert });
    secureContexts.set(caCert, context);
  }
  return context;
}

/**
 * Connection errors and 5xx are worth another attempt; 4xx answers will not change, and
 * neither will a certificate that does not verify against the pinned CA.
 */
function retryable(error: unknown): boolean {
  if (!(error instanceof ControllerRequestError)) return false;
  const status = error.context.status;
  if (status !== undefined) return status >= 500;
  const code = (error.cause as { code?: unknown } | undefined)?.code;
  return !(typeof code === 'string' && /CERT|SIGNATURE|ERR_TLS/.test(code));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** NodeApi over HTTPS, for one node of one cluster. */
export class NodeClient implements NodeApi {
  private readonly transport: ControllerTransport;
  readonly cluster: string;
  readonly node: string;

  /** The path parameters of this node's requests: its cluster, and the node itself. */
  private readonly at: { c: string };
  private readonly self: { c: string; n: string };

  constructor(transport: ControllerTransport, cluster: string, node: string) {
    this.transport = transport;
    this.cluster = cluster;
    this.node = node;
    this.at = { c: cluster };
    this.self = { c: cluster, n: node };
  }

  register(request: RegisterRequest): Promise<NodeStatus> {
    return this.transport.call(API.register, this.self, { body: request });
  }

  claimLeader(request: LeaderClaimRequest): Promise<LeaderClaimResponse> {
    return this.transport.call(API.claimLeader, this.at, { body: request });
  }

  leaderState(options: { waitSeconds?: number; known?: { epoch: number; initialized: boolean } } = {}): Promise<LeaderState> {
    return this.transport.call(API.leaderState, this.at, {
      query: { wait: options.waitSeconds, epoch: options.known?.epoch, initialized: options.known?.initialized },
      waitSeconds: options.waitSeconds,
    });
  }

  pki(): Promise<PkiBundle> {
    return this.transport.call(API.pki, this.at);
  }

  vsphere(): Promise<VsphereCredentials> {
    return this.transport.call(API.getVsphere, this.at);
  }

  join(request: JoinRequest, options: { waitSeconds?: number } = {}): Promise<JoinGrant> {
    return this.transport.call(API.join, this.at, {
      body: request,
      query: { wait: options.waitSeconds },
      waitSeconds: options.waitSeconds,
    });
  }

  controlPlane(): Promise<ControlPlaneView> {
    return this.transport.call(API.controlPlane, this.at);
  }

  events(request: EventsRequest): Promise<void> {
    return this.transport.call(API.events, this.self, { body: request });
  }

  joined(request: JoinedRequest): Promise<void> {
    return this.transport.call(API.joined, this.self, { body: request });
  }

  ready(request: ReadyRequest): Promise<void> {
    return this.transport.call(API.ready, this.self, { body: request });
  }

  status(): Promise<ClusterStatus> {
    return this.transport.call(API.status, this.at);
  }

  reportCertificates(report: CertificatesReport): Promise<void> {
    return this.transport.call(API.reportCertificates, this.self, { body: report });
  }

  claimRenewal(): Promise<RenewalClaim> {
    return this.transport.call(API.claimRenewal, this.self);
  }

  claimBackup(): Promise<BackupClaim> {
    return this.transport.call(API.claimBackup, this.self);
  }

  /** Streams the snapshot `file` as the upload of claim `query.id`. */
  uploadBackup(query: { id: string; sha256: string; takenAt: string; revision?: number }, file: string): Promise<BackupRecord> {
    return this.transport.call(API.uploadBackup, this.self, { query, bodyFile: file });
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

/** The client a node's bootstrap uses: URL, CA and token from its config; node name from the config or the token. */
export function createNodeClient(config: AgentConfig, options: Omit<ClientOptions, 'url' | 'caCert' | 'token'> = {}): NodeClient {
  const { url, otherUrls, caCert, token } = config.controller;
  return new NodeClient(new ControllerTransport({ ...options, url, otherUrls, caCert, token }), config.cluster.id, nodeName(config));
}

/** Cluster management with the admin token, for the CLI. */
export class AdminClient {
  private readonly transport: ControllerTransport;

  constructor(options: ClientOptions) {
    this.transport = new ControllerTransport(options);
  }

  createCluster(spec: ClusterSpecInput): Promise<ClusterSummary> {
    return this.transport.call(API.createCluster, {}, { body: spec });
  }

  listClusters(): Promise<ClusterList> {
    return this.transport.call(API.listClusters, {});
  }

  showCluster(cluster: string): Promise<ClusterSummary> {
    return this.transport.call(API.showCluster, { c: cluster });
  }

  nodeConfig(cluster: string, request: NodeConfigRequest): Promise<NodeConfigResponse> {
    return this.transport.call(API.nodeConfig, { c: cluster }, { body: request });
  }

  setVsphere(cluster: string, credentials: VsphereCredentialsInput): Promise<void> {
    return this.transport.call(API.setVsphere, { c: cluster }, { body: credentials });
  }

  revoke(cluster: string, request: RevocationRequest): Promise<RevocationResponse> {
    return this.transport.call(API.revoke, { c: cluster }, { body: request });
  }

  status(cluster: string): Promise<ClusterStatus> {
    return this.transport.call(API.status, { c: cluster });
  }

  scalePool(cluster: string, request: ScaleRequest): Promise<ClusterSummary> {
    return this.transport.call(API.scalePool, { c: cluster }, { body: request });
  }

  removeNode(cluster: string, request: RemovalRequest): Promise<NodeStatus> {
    return this.transport.call(API.removeNode, { c: cluster }, { body: request });
  }

  controlPlane(cluster: string): Promise<ControlPlaneView> {
    return this.transport.call(API.controlPlane, { c: cluster });
  }

  timeline(cluster: string): Promise<Timeline> {
    return this.transport.call(API.timeline, { c: cluster });
  }

  createAccessToken(request: AccessTokenRequest): Promise<AccessToken> {
    return this.transport.call(API.createAccessToken, {}, { body: request });
  }

  listAccessTokens(): Promise<AccessTokenList> {
    return this.transport.call(API.listAccessTokens, {});
  }

  revokeAccessToken(jti: string): Promise<void> {
    return this.transport.call(API.revokeAccessToken, {}, { body: { jti } });
  }

  requestBackup(cluster: string): Promise<BackupRequestResponse> {
    return this.transport.call(API.requestBackup, { c: cluster });
  }

  listBackups(cluster: string): Promise<BackupList> {
    return this.transport.call(API.listBackups, { c: cluster });
  }

  startUpgrade(cluster: string, request: UpgradeRequest): Promise<UpgradeView> {
    return this.transport.call(API.startUpgrade, { c: cluster }, { body: request });
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
