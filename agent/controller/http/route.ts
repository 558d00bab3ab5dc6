import type { IncomingMessage } from 'node:http';
import type { PathParams, RouteSpec, SchemaInput, SchemaOutput } from '../../protocol/routes.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState } from '../store/state.ts';
import type { NodePrincipal, Principal } from '../auth/tokens.ts';
import type { ApiProblem } from './problem.ts';

/**
 * What a handler of a route of the table (agent/protocol/routes.ts) is given: the server has
 * authenticated the caller, authorized it for the route, the path's cluster and node, and
 * validated the body and query against the route's schemas.
 */
export interface HandlerContext<R extends RouteSpec> {
  /** A node on node and control-plane routes; none on routes anyone may call. */
  principal: R['access'] extends 'node' | 'control-plane' ? NodePrincipal : R['access'] extends 'anyone' ? undefined : Principal;
  /** Decoded path parameters. */
  params: PathParams<R['path']>;
  /** The path's cluster, resolved and authorized by the server, on routes under `{c}`. */
  cluster: R['path'] extends `${string}{c}${string}` ? ClusterState : undefined;
  body: SchemaOutput<R['body']>;
  query: SchemaOutput<R['query']>;
  /** On upload routes: the request, whose raw body the handler reads. */
  upload?: IncomingMessage;
  /** Aborted when the client goes away (long-polls stop waiting). */
  signal: AbortSignal;
  runtime: ControllerRuntime;
}

/** An answer written as it is: a page, text, or an empty answer with headers (a cookie). */
export class RawAnswer {
  readonly contentType: string;
  readonly body: string;
  readonly headers: Record<string, string>;

  constructor(contentType: string, body: string, headers: Record<string, string> = {}) {
    this.contentType = contentType;
    this.body = body;
    this.headers = headers;
  }
}

/**
 * The answer a handler gives: on JSON routes the route's answer schema's input, or nothing on
 * routes without one (or a RawAnswer, for headers); a RawAnswer on html and text routes; on
 * event-stream routes the events, each a whole `event:`/`data:` block, until the client leaves.
 */
type HandlerAnswer<R extends RouteSpec> = [Exclude<R['produces'], undefined>] extends [never]
  ? // biome-ignore lint/suspicious/noConfusingVoidType: a handler of a route without an answer returns nothing (void), which undefined would not accept
    (R['answer'] extends undefined ? void : SchemaInput<R['answer']>) | RawAnswer
  : [Exclude<R['produces'], undefined>] extends ['event-stream']
    ? AsyncIterable<string>
    : RawAnswer;

export interface BoundRoute {
  spec: RouteSpec;
  handle(context: HandlerContext<RouteSpec>): unknown;
  /** How a refusal is shown on a page route (a login form for 401); JSON otherwise. */
  problemAnswer?(problem: ApiProblem): RawAnswer;
}

/** Binds a handler to a route of the table. */
export function bind<R extends RouteSpec>(
  spec: R,
  handle: (context: HandlerContext<R>) => HandlerAnswer<R> | Promise<HandlerAnswer<R>>,
  problemAnswer?: (problem: ApiProblem) => RawAnswer,
): BoundRoute {
  return { spec, handle: handle as unknown as BoundRoute['handle'], ...(problemAnswer ? { problemAnswer } : {}) };
}
