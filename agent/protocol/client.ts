import { createSecureContext, type SecureContext } from 'node:tls';
import pRetry from 'p-retry';
import { Agent, request } from '../net/undici.ts';
import type { z } from 'zod';
import { nodeName } from '../config/node-name.ts';
import type { AgentConfig } from '../config/schema.ts';
import { errorMessage } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { ControllerRequestError } from './errors.ts';
import {
  apiErrorSchema,
  clusterListSchema,
  clusterStatusSchema,
  clusterSummarySchema,
  controlPlaneViewSchema,
  joinGrantSchema,
  leaderClaimResponseSchema,
  leaderStateSchema,
  nodeConfigResponseSchema,
  nodeStatusSchema,
  pkiBundleSchema,
  vsphereCredentialsSchema,
  revocationResponseSchema,
  routes,
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
  type RevocationRequest,
  type RevocationResponse,
  type VsphereCredentials,
  type VsphereCredentialsInput,
} from './api.ts';
import type { NodeApi } from './node-api.ts';

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

interface CallOptions<T> {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  schema?: z.ZodType<T>;
  /** Long-poll wait in seconds: the request may take that long before the answer starts. */
  waitSeconds?: number;
}

export class ControllerTransport {
  readonly baseUrl: string;
  private readonly token: string;
  private readonly dispatcher: Agent;
  private readonly log: Logger;
  private readonly retry: RetryOptions;
  private readonly timeoutMs: number;
  private readonly signal: AbortSignal | undefined;

  constructor(options: ClientOptions) {
    this.baseUrl = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.dispatcher = new Agent({ connect: { secureContext: secureContextFor(options.caCert) }, keepAliveTimeout: 10_000 });
    this.log = options.log ?? silentLogger;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.signal = options.signal;
  }

  async call<T>(method: 'GET' | 'POST', path: string, options: CallOptions<T> = {}): Promise<T> {
    let attempts = 0;
    try {
      return await pRetry(
        () => {
          attempts += 1;
          return this.once(method, path, options);
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

  close(): Promise<void> {
    return this.dispatcher.close();
  }

  private async once<T>(method: 'GET' | 'POST', path: string, options: CallOptions<T>): Promise<T> {
    const query = Object.entries(options.query ?? {}).filter((entry): entry is [string, string | number | boolean] => entry[1] !== undefined);
    const search = query.length > 0 ? `?${new URLSearchParams(query.map(([k, v]): [string, string] => [k, String(v)])).toString()}` : '';
    const timeout = this.timeoutMs + (options.waitSeconds ?? 0) * 1000;
    let answer;
    try {
      answer = await request(`${this.baseUrl}${path}${search}`, {
        method,
        dispatcher: this.dispatcher,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: this.signal,
      });
    } catch (error) {
      throw new ControllerRequestError(method, path, undefined, undefined, `no answer from ${this.baseUrl}: ${errorMessage(error)}`, error);
    }
    const text = await answer.body.text();
    if (answer.statusCode >= 200 && answer.statusCode < 300) {
      if (!options.schema) return undefined as T;
      const parsed = options.schema.safeParse(text === '' ? undefined : safeJson(text));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ControllerRequestError(method, path, answer.statusCode, undefined, `unexpected answer (${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'})`);
      }
      return parsed.data;
    }
    const problem = apiErrorSchema.safeParse(safeJson(text));
    if (problem.success) {
      const { code, message, field } = problem.data.error;
      throw new ControllerRequestError(method, path, answer.statusCode, code, field ? `${message} (field ${field})` : message);
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

  constructor(transport: ControllerTransport, cluster: string, node: string) {
    this.transport = transport;
    this.cluster = cluster;
    this.node = node;
  }

  register(request: RegisterRequest): Promise<NodeStatus> {
    return this.transport.call('POST', routes.register(this.cluster, this.node), { body: request, schema: nodeStatusSchema });
  }

  claimLeader(request: LeaderClaimRequest): Promise<LeaderClaimResponse> {
    return this.transport.call('POST', routes.leader(this.cluster), { body: request, schema: leaderClaimResponseSchema });
  }

  leaderState(options: { waitSeconds?: number; known?: { epoch: number; initialized: boolean } } = {}): Promise<LeaderState> {
    return this.transport.call('GET', routes.leader(this.cluster), {
      query: { wait: options.waitSeconds, epoch: options.known?.epoch, initialized: options.known?.initialized },
      waitSeconds: options.waitSeconds,
      schema: leaderStateSchema,
    });
  }

  pki(): Promise<PkiBundle> {
    return this.transport.call('GET', routes.pki(this.cluster), { schema: pkiBundleSchema });
  }

  vsphere(): Promise<VsphereCredentials> {
    return this.transport.call('GET', routes.vsphere(this.cluster), { schema: vsphereCredentialsSchema });
  }

  join(request: JoinRequest, options: { waitSeconds?: number } = {}): Promise<JoinGrant> {
    return this.transport.call('POST', routes.join(this.cluster), {
      body: request,
      query: { wait: options.waitSeconds },
      waitSeconds: options.waitSeconds,
      schema: joinGrantSchema,
    });
  }

  controlPlane(): Promise<ControlPlaneView> {
    return this.transport.call('GET', routes.controlPlane(this.cluster), { schema: controlPlaneViewSchema });
  }

  events(request: EventsRequest): Promise<void> {
    return this.transport.call('POST', routes.events(this.cluster, this.node), { body: request });
  }

  joined(request: JoinedRequest): Promise<void> {
    return this.transport.call('POST', routes.joined(this.cluster, this.node), { body: request });
  }

  ready(request: ReadyRequest): Promise<void> {
    return this.transport.call('POST', routes.ready(this.cluster, this.node), { body: request });
  }

  status(): Promise<ClusterStatus> {
    return this.transport.call('GET', routes.status(this.cluster), { schema: clusterStatusSchema });
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}

/** The client a node's bootstrap uses: URL, CA and token from its config; node name from the config or the token. */
export function createNodeClient(config: AgentConfig, options: Omit<ClientOptions, 'url' | 'caCert' | 'token'> = {}): NodeClient {
  const { url, caCert, token } = config.controller;
  return new NodeClient(new ControllerTransport({ ...options, url, caCert, token }), config.cluster.id, nodeName(config));
}

/** Cluster management with the admin token, for the CLI. */
export class AdminClient {
  private readonly transport: ControllerTransport;

  constructor(options: ClientOptions) {
    this.transport = new ControllerTransport(options);
  }

  createCluster(spec: ClusterSpecInput): Promise<ClusterSummary> {
    return this.transport.call('POST', routes.clusters(), { body: spec, schema: clusterSummarySchema });
  }

  listClusters(): Promise<ClusterList> {
    return this.transport.call('GET', routes.clusters(), { schema: clusterListSchema });
  }

  showCluster(cluster: string): Promise<ClusterSummary> {
    return this.transport.call('GET', routes.cluster(cluster), { schema: clusterSummarySchema });
  }

  nodeConfig(cluster: string, request: NodeConfigRequest): Promise<NodeConfigResponse> {
    return this.transport.call('POST', routes.nodeConfig(cluster), { body: request, schema: nodeConfigResponseSchema });
  }

  setVsphere(cluster: string, credentials: VsphereCredentialsInput): Promise<void> {
    return this.transport.call('POST', routes.vsphere(cluster), { body: credentials });
  }

  revoke(cluster: string, request: RevocationRequest): Promise<RevocationResponse> {
    return this.transport.call('POST', routes.revoke(cluster), { body: request, schema: revocationResponseSchema });
  }

  status(cluster: string): Promise<ClusterStatus> {
    return this.transport.call('GET', routes.status(cluster), { schema: clusterStatusSchema });
  }

  controlPlane(cluster: string): Promise<ControlPlaneView> {
    return this.transport.call('GET', routes.controlPlane(cluster), { schema: controlPlaneViewSchema });
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
