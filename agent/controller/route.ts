import type { z } from 'zod';
import type { ControllerRuntime } from './runtime.ts';
import type { ClusterState } from './state.ts';
import { forbidden } from './problem.ts';
import type { NodePrincipal, Principal } from './tokens.ts';

/**
 * Who may call a route. `node` and `control-plane` take node tokens of the path's cluster
 * (control-plane: role master only); a path with `{n}` must name the token's own node.
 */
export type Access = 'admin' | 'node' | 'control-plane' | 'admin-or-node';

export interface RouteContext<Body, Query> {
  principal: Principal;
  /** Decoded path parameters: `c` (cluster id or name) and `n` (node name) where the pattern has them. */
  params: Record<string, string>;
  /** The path's cluster, resolved and authorized by the server; undefined on routes without `{c}`. */
  cluster: ClusterState | undefined;
  body: Body;
  query: Query;
  /** Aborted when the client goes away (long-polls stop waiting). */
  signal: AbortSignal;
  runtime: ControllerRuntime;
}

export interface ClusterRouteContext<Body, Query> extends RouteContext<Body, Query> {
  cluster: ClusterState;
}

export interface Route<Body = unknown, Query = unknown> {
  method: 'GET' | 'POST';
  /** Path with `{c}` and `{n}` placeholders; also what the request log shows. */
  pattern: string;
  access: Access;
  /** Success status; 204 answers carry no body. */
  status?: 200 | 201 | 204;
  body?: z.ZodType<Body>;
  query?: z.ZodType<Query>;
  handle(context: RouteContext<Body, Query>): Promise<unknown> | unknown;
}

/** Declares a route; the type parameters come from its schemas. */
export function route<Body = undefined, Query = undefined>(definition: Route<Body, Query>): Route {
  return definition as Route;
}

/** Declares a route under `/v1/clusters/{c}`, whose handler always has the cluster. */
export function clusterRoute<Body = undefined, Query = undefined>(
  definition: Omit<Route<Body, Query>, 'handle'> & { handle(context: ClusterRouteContext<Body, Query>): Promise<unknown> | unknown },
): Route {
  return route<Body, Query>({
    ...definition,
    handle: (context) => {
      if (!context.cluster) throw new Error(`route ${definition.pattern} has no {c} parameter`);
      return definition.handle({ ...context, cluster: context.cluster });
    },
  });
}

/** The node behind a request on a node route (the server has checked it already). */
export function asNode(principal: Principal): NodePrincipal {
  if (principal.kind !== 'node') throw forbidden('this endpoint is for nodes');
  return principal;
}
