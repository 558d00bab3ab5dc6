import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ZodType } from 'zod';
import { errorMessage } from '../../core/errors.ts';
import { issuePath } from '../../core/schema-issues.ts';
import { MAX_BODY_BYTES, type ApiError } from '../../protocol/api.ts';
import { findCluster } from '../clusters/cluster-records.ts';
import { ApiProblem, badRequest, forbidden, notFound } from './problem.ts';
import { API, type RouteSpec } from '../../protocol/routes.ts';
import type { LoadGate } from './limits.ts';
import type { BoundRoute, HandlerContext } from './route.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState } from '../store/state.ts';
import { TokenRejected, type Principal } from '../auth/tokens.ts';

/**
 * The HTTP side of the controller: matches a route, authenticates the bearer token, authorizes
 * it for the route and the path's cluster and node, reads and validates the body, runs the
 * handler, waits until the state behind the answer is on disk, and logs one line per request.
 * `routes` binds a handler to every route of the table, each once.
 */
export function requestHandler(routes: BoundRoute[], runtime: ControllerRuntime, gate: LoadGate) {
  assertEveryRouteBound(routes);
  const table = routes.map((route) => ({ route, segments: route.spec.path.split('/') }));

  return (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const log: { route: string; cluster?: string; node?: string } = { route: '(none)' };
    let upload = false;
    const aborter = new AbortController();
    // Only a client that leaves before its answer is aborted (abort() costs a DOMException).
    res.on('close', () => {
      if (!res.writableFinished) aborter.abort();
    });

    const finish = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(text)),
        'cache-control': 'no-store',
        ...headers,
      });
      res.end(text);
      runtime.log.info('request', {
        method: req.method,
        route: log.route,
        status,
        ms: Math.round(performance.now() - started),
        cluster: log.cluster,
        node: log.node,
      });
    };

    const serve = async () => {
      gate.checkConnections();
      const url = new URL(req.url ?? '/', 'https://controller');
      const match = matchRoute(table, req.method ?? 'GET', url.pathname);
      if (!match.route)
        throw match.methodMismatch
          ? new ApiProblem(405, 'bad-request', `${req.method} is not allowed on ${url.pathname}`)
          : notFound(`no route ${req.method} ${url.pathname}`);
      const { route, params } = match;
      const { spec } = route;
      log.route = spec.path;

      const principal = spec.access === 'anyone' ? undefined : await authenticate(req, runtime);
      const cluster = principal === undefined ? undefined : authorize(spec, principal, params, runtime);
      if (principal) log.node = principal.kind === 'node' ? principal.node : 'admin';
      if (cluster) log.cluster = cluster.id;
      // Only an authorized caller's upload is read to its end when refused; anyone else's connection is closed.
      upload = spec.upload === true;

      const body = spec.body ? validate(spec.body, req.method === 'POST' ? ((await readJson(req)) ?? {}) : {}, '') : undefined;
      const query = spec.query ? validate(spec.query, Object.fromEntries(url.searchParams), 'query.') : undefined;
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
        spec.longPoll && principal?.kind === 'node' ? gate.enterLongPoll(`${principal.cluster}/${principal.node}`) : undefined;
      let answer;
      try {
        answer = await route.handle(context);
      } finally {
        release?.();
      }
      // Every 2xx answer reflects state that is on disk (group commit: see store.ts).
      await runtime.store.durable();
      finish(spec.status, spec.status === 204 ? undefined : answer);
    };

    serve().catch((error: unknown) => {
      if (res.headersSent) return;
      if (error instanceof ApiProblem) {
        const body: ApiError = {
          error: { code: error.code, message: error.message, ...(error.field === undefined ? {} : { field: error.field }) },
        };
        // A refusal before the body is in (401, 403, 413) does not wait for the rest of it, and an overloaded controller sheds the connection.
        // An upload refused part-way is read to its end and dropped (node:http does it), so that its
        // client, still sending, gets the answer rather than a reset connection; it stops sending once it has.
        const close = (!req.complete && !upload) || error.code === 'overloaded';
        finish(error.status, body, close ? { connection: 'close' } : {});
        return;
      }
      runtime.log.error('request.failed', { method: req.method, route: log.route, error: errorMessage(error) });
      // What went wrong inside is for the operator's log, not for whoever asked.
      finish(500, { error: { code: 'internal', message: 'internal error; the controller log has the details' } } satisfies ApiError);
    });
  };
}

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

async function authenticate(req: IncomingMessage, runtime: ControllerRuntime): Promise<Principal> {
  const header = req.headers.authorization ?? '';
  const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
  if (!token) throw new ApiProblem(401, 'unauthorized', 'no bearer token: send Authorization: Bearer <token>');
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
  if (principal.kind === 'node') {
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
  }
  if (route.access === 'node' || route.access === 'control-plane') {
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
