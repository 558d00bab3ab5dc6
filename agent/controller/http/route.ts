import type { IncomingMessage } from 'node:http';
import type { PathParams, RouteSpec, SchemaInput, SchemaOutput } from '../../protocol/routes.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState } from '../store/state.ts';
import type { NodePrincipal, Principal } from '../auth/tokens.ts';

/**
 * What a handler of a route of the table (agent/protocol/routes.ts) is given: the server has
 * authenticated the caller, authorized it for the route, the path's cluster and node, and
 * validated the body and query against the route's schemas.
 */
export interface HandlerContext<R extends RouteSpec> {
  /** A node on node and control-plane routes. */
  principal: R['access'] extends 'node' | 'control-plane' ? NodePrincipal : Principal;
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

/** The answer a handler gives: the route's answer schema's input, or nothing on routes without one. */
// biome-ignore lint/suspicious/noConfusingVoidType: a handler of a route without an answer returns nothing (void), which undefined would not accept
type HandlerAnswer<R extends RouteSpec> = R['answer'] extends undefined ? void : SchemaInput<R['answer']>;

export interface BoundRoute {
  spec: RouteSpec;
  handle(context: HandlerContext<RouteSpec>): unknown;
}

/** Binds a handler to a route of the table. */
export function bind<R extends RouteSpec>(
  spec: R,
  handle: (context: HandlerContext<R>) => HandlerAnswer<R> | Promise<HandlerAnswer<R>>,
): BoundRoute {
  return { spec, handle: handle as unknown as BoundRoute['handle'] };
}
