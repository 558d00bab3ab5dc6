import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ZodType } from 'zod';
import { errorMessage } from '../../core/errors.ts';
import { issuePath } from '../../core/schema-issues.ts';
import { MAX_BODY_BYTES, type ApiError } from '../../protocol/api.ts';
import { findCluster } from '../clusters/cluster-records.ts';
import { ApiProblem, badRequest, forbidden, notFound } from './problem.ts';
import { API, type RouteSpec } from '../../protocol/routes.ts';
import type { LoadGate } from './limits.ts';
import { RawAnswer, type BoundRoute, type HandlerContext } from './route.ts';
import { takesViewCookie, viewCookieToken } from './view-cookie.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState } from '../store/state.ts';
import { StoreConflict, StoreUnavailable } from '../store/entities.ts';
import { TokenRejected, type Principal } from '../auth/tokens.ts';

/**
 * The HTTP side of the controller: matches a route, authenticates the bearer token, authorizes
 * it for the route and the path's cluster and node, reads and validates the body, runs the
 * handler, waits until the state behind the answer is on disk, and logs one line per request.
 * `routes` binds a handler to every route of the table, each once. `observer` hears of every
 * answer (metrics, the web view's live updates).
 */
/** How many times a request that lost a race with another replica is run (shared stores only). */
const STORE_CONFLICT_ATTEMPTS = 5;

export function requestHandler(routes: BoundRoute[], runtime: ControllerRuntime, gate: LoadGate, observer?: RequestObserver) {
  assertEveryRouteBound(routes);
  const table = routes.map((route) => ({ route, segments: route.spec.path.split('/') }));

  return (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const log: { route: string; cluster?: string; node?: string; code?: string } = { route: '(none)' };
    let upload = false;
    const aborter = new AbortController();
    // Only a client that leaves before its answer is aborted (abort() costs a DOMException).
    res.on('close', () => {
      if (!res.writableFinished) aborter.abort();
    });

    const logAnswered = (status: number) => {
      const seconds = (performance.now() - started) / 1000;
      runtime.log.info('request', {
        method: req.method,
        route: log.route,
        status,
        ms: Math.round(seconds * 1000),
        cluster: log.cluster,
        node: log.node,
      });
      observer?.answered({ method: req.method ?? 'GET', route: log.route, status, seconds, cluster: log.cluster, code: log.code });
    };

    const finish = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const raw = body instanceof RawAnswer ? body : undefined;
      const text = raw ? raw.body : body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, {
        'content-type': raw ? raw.contentType : 'application/json',
        'content-length': String(Buffer.byteLength(text)),
        'cache-control': 'no-store',
        ...(raw?.contentType.startsWith('text/html') ? PAGE_HEADERS : {}),
        ...raw?.headers,
        ...headers,
      });
      res.end(text);
      logAnswered(status);
    };

    /** Server-sent events until the stream ends or the client leaves; the answer is logged when it closes. */
    const stream = async (events: AsyncIterable<string>) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      try {
        for await (const event of events) {
          if (aborter.signal.aborted) break;
          res.write(event);
        }
      } finally {
        res.end();
        logAnswered(200);
      }
    };

    let pageRoute: BoundRoute | undefined;
    const serve = async () => {
      gate.checkConnections();
      const url = new URL(req.url ?? '/', 'https://controller');
      const match = matchRoute(table, req.method ?? 'GET', url.pathname);
      if (!match.route)
        throw match.methodMismatch
          ? new ApiProblem(405, 'bad-request', `${req.method} is not allowed on ${url.pathname}`)
          : notFound(`no route ${req.method} ${url.pathname}`);
      const { route, params } = match;
      pageRoute = route;
      const { spec } = route;
      log.route = spec.path;

      const principal = spec.access === 'anyone' ? undefined : await authenticate(req, runtime, takesViewCookie(spec));
      const cluster = principal === undefined ? undefined : authorize(spec, principal, params, runtime);
      if (principal) log.node = principal.kind === 'node' ? principal.node : principal.kind === 'access' ? principal.role : 'admin';
      if (cluster) log.cluster = cluster.id;
      // Only an authorized caller's upload is read to its end when refused; anyone else's connection is closed.
      upload = spec.upload === true;

      const body = spec.body ? validate(spec.body, req.method === 'POST' ? ((await readJson(req)) ?? {}) : {}, '') : undefined;
      const query = spec.query ? validate(spec.query, Object.fromEntries(url.searchParams), 'query.') : undefined;
      // An event stream holds a connection as a long-poll does, and counts against the same cap.
      // An upload's body is the handler's to read (and to refuse before reading); others have theirs parsed above.
      const context = {
        principal,
        params,
        cluster,
        body,
        query,
        upload: upload ? req : undefined,
        signal: aborter.signal,
        runtime,
      } as HandlerContext<RouteSpec>;
      const release =
        spec.longPoll && principal?.kind === 'node'
          ? gate.enterLongPoll(`${principal.cluster}/${principal.node}`)
          : spec.produces === 'event-stream'
            ? gate.enterLongPoll(`stream/${streams++}`)
            : undefined;
      let answer;
      try {
        for (let attempt = 1; ; attempt += 1) {
          const since = runtime.store.mark();
          answer = await route.handle(context);
          if (spec.produces === 'event-stream') {
            await stream(answer as AsyncIterable<string>);
            return;
          }
          try {
            // Every 2xx answer reflects state that is stored (group commit: see store/).
            await runtime.store.durable(since);
            break;
          } catch (error) {
            // Another replica changed what this request built on: run it again on what it changed.
            if (!(error instanceof StoreConflict) || attempt >= STORE_CONFLICT_ATTEMPTS) throw error;
          }
        }
      } finally {
        release?.();
      }
      finish(spec.status, spec.status === 204 && !(answer instanceof RawAnswer) ? undefined : answer);
    };

    serve().catch((error: unknown) => {
      if (res.headersSent) return;
      if (error instanceof StoreConflict || error instanceof StoreUnavailable) {
        runtime.log.warn('request.store', { method: req.method, route: log.route, error: error.message });
        finish(503, { error: { code: 'store-unavailable', message: `${error.message}; retry` } } satisfies ApiError);
        return;
      }
      if (error instanceof ApiProblem) {
        log.code = error.code;
        const body: ApiError = {
          error: { code: error.code, message: error.message, ...(error.field === undefined ? {} : { field: error.field }) },
        };
        // A refusal before the body is in (401, 403, 413) does not wait for the rest of it, and an overloaded controller sheds the connection.
        // An upload refused part-way is read to its end and dropped (node:http does it), so that its
        // client, still sending, gets the answer rather than a reset connection; it stops sending once it has.
        const close = (!req.complete && !upload) || error.code === 'overloaded';
        const page = pageRoute?.problemAnswer?.(error);
        finish(error.status, page ?? body, close ? { connection: 'close' } : {});
        return;
      }
      runtime.log.error('request.failed', { method: req.method, route: log.route, error: errorMessage(error) });
      // What went wrong inside is for the operator's log, not for whoever asked.
      finish(500, { error: { code: 'internal', message: 'internal error; the controller log has the details' } } satisfies ApiError);
    });
  };
}

/** What the server tells its observer about each answer. */
export interface AnsweredRequest {
  method: string;
  /** The route's path pattern, `(none)` when no route matched. */
  route: string;
  status: number;
  seconds: number;
  /** The path's cluster id, once authorized. */
  cluster?: string;
  /** The error code of a refusal. */
  code?: string;
}

export interface RequestObserver {
  answered(request: AnsweredRequest): void;
}

/** What pages may do: only what the controller serves itself (no external assets), never framed. */
const PAGE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

let streams = 0;

type Match =
  | { route: BoundRoute; params: Record<string, string>; methodMismatch?: undefined }
  | { route?: undefined; methodMismatch: boolean };

/** Fails at start when a route of the table has no handler, or two. */
function assertEveryRouteBound(routes: BoundRoute[]): void {
  for (const [name, spec] of Object.entries(API)) {
    const bound = routes.filter((route) => route.spec === spec).length;
    if (bound !== 1) throw new Error(`route ${name} (${spec.method} ${spec.path}) has ${bound} handlers; it needs one`);
  }
}

/** HEAD is GET without the body (node:http leaves the body out of a HEAD answer). */
function matchRoute(table: { route: BoundRoute; segments: string[] }[], method: string, pathname: string): Match {
  const wanted = method === 'HEAD' ? 'GET' : method;
  const parts = pathname.split('/');
  let methodMismatch = false;
  for (const { route, segments } of table) {
    if (segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let matched = true;
    for (let i = 0; i < segments.length && matched; i += 1) {
      const segment = segments[i] ?? '';
      const part = parts[i] ?? '';
      if (segment.startsWith('{')) {
        if (part === '') matched = false;
        else params[segment.slice(1, -1)] = safeDecode(part);
      } else matched = segment === part;
    }
    if (!matched) continue;
    if (route.spec.method === wanted) return { route, params };
    methodMismatch = true;
  }
  return { methodMismatch };
}

/** The bearer token, or on the view's own routes (`cookie`) the web view's cookie. */
async function authenticate(req: IncomingMessage, runtime: ControllerRuntime, cookie: boolean): Promise<Principal> {
  const header = req.headers.authorization ?? '';
  const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? (cookie ? viewCookieToken(req.headers.cookie) : undefined);
  if (!token)
    throw new ApiProblem(
      401,
      'unauthorized',
      `no bearer token: send Authorization: Bearer <token>${cookie ? ', or log in to the view' : ''}`,
    );
  return verifyToken(token, runtime);
}

/** A principal whose token verifies and is current: not replaced (admin), revoked (node) or withdrawn (viewer, metrics). */
export async function verifyToken(token: string, runtime: ControllerRuntime): Promise<Principal> {
  let principal: Principal;
  try {
    principal = await runtime.tokens.verify(token);
  } catch (error) {
    if (error instanceof TokenRejected)
      throw new ApiProblem(401, error.reason === 'expired' ? 'token-expired' : 'unauthorized', error.message);
    throw error;
  }
  if (principal.kind === 'admin' && principal.jti !== runtime.store.state.adminTokenId) {
    throw new ApiProblem(401, 'unauthorized', 'this admin token has been replaced; use the current admin.token');
  }
  if (principal.kind === 'node' && runtime.store.state.clusters[principal.cluster]?.revokedTokens[principal.jti] !== undefined) {
    throw new ApiProblem(401, 'token-revoked', `this node token (jti ${principal.jti}) has been revoked`);
  }
  if (principal.kind === 'access' && runtime.store.state.accessTokens?.[principal.jti] === undefined) {
    throw new ApiProblem(401, 'token-revoked', `this ${principal.role} token (jti ${principal.jti}) has been revoked`);
  }
  return principal;
}

/** Returns the path's cluster once the principal may act on it through this route. */
function authorize(
  route: RouteSpec,
  principal: Principal,
  params: Record<string, string>,
  runtime: ControllerRuntime,
): ClusterState | undefined {
  const cluster = params.c === undefined ? undefined : findCluster(runtime.store.state, params.c);
  const readOnly = route.access === 'viewer' || route.access === 'metrics';
  if (principal.kind === 'access') {
    if (!readOnly || (route.access === 'viewer' && principal.role !== 'viewer'))
      throw forbidden(`${route.method} ${route.path} is not for a ${principal.role} token`);
  } else if (principal.kind === 'node') {
    if (readOnly) throw forbidden(`${route.method} ${route.path} needs the admin token or a viewer token; node tokens cannot read it`);
    if (params.c === undefined || !cluster || cluster.id !== principal.cluster) {
      throw forbidden(
        `this node token belongs to cluster ${principal.cluster}${params.c === undefined ? '; cluster management needs the admin token' : `, not ${params.c}`}`,
      );
    }
    if (route.access === 'admin') throw forbidden(`${route.method} ${route.path} needs the admin token`);
    if (route.access === 'control-plane' && principal.role !== 'master') {
      throw forbidden(`${route.method} ${route.path} is for control-plane nodes; ${principal.node} is a ${principal.role}`);
    }
    if (params.n !== undefined && params.n !== principal.node) throw forbidden(`this token is for node ${principal.node}, not ${params.n}`);
    return cluster;
  } else if (route.access === 'node' || route.access === 'control-plane') {
    throw forbidden(`${route.method} ${route.path} is for nodes; the admin token cannot act as a node`);
  }
  if (params.c !== undefined && !cluster) throw notFound(`no cluster ${params.c}`);
  return cluster;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const tooLarge = () => new ApiProblem(413, 'body-too-large', `the request body exceeds ${MAX_BODY_BYTES} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw badRequest(`the body is not JSON: ${errorMessage(error)}`);
  }
}

function validate<T>(schema: ZodType<T>, value: unknown, prefix: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue ? issuePath(issue) : '';
  const field = `${prefix}${path}`.replace(/\.$/, '');
  throw badRequest(`${field || 'body'}: ${issue?.message ?? 'invalid'}`, field || undefined);
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
