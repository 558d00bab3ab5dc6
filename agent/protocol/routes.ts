import { z } from 'zod';
import { ownValue } from '../core/records.ts';
import {
  accessTokenListSchema,
  accessTokenRequestSchema,
  accessTokenRevocationSchema,
  accessTokenSchema,
  backupClaimSchema,
  backupListSchema,
  backupRecordSchema,
  backupRequestResponseSchema,
  backupUploadQuerySchema,
  certificatesReportSchema,
  renewalClaimSchema,
  clusterListSchema,
  clusterSpecSchema,
  clusterStatusSchema,
  clusterSummarySchema,
  controlPlaneViewSchema,
  eventsRequestSchema,
  joinGrantSchema,
  joinRequestSchema,
  joinedRequestSchema,
  leaderClaimRequestSchema,
  leaderClaimResponseSchema,
  leaderQuerySchema,
  leaderStateSchema,
  nodeConfigRequestSchema,
  nodeConfigResponseSchema,
  nodeStatusSchema,
  pkiBundleSchema,
  readyRequestSchema,
  registerRequestSchema,
  removalRequestSchema,
  revocationRequestSchema,
  revocationResponseSchema,
  timelineSchema,
  viewLoginSchema,
  scaleRequestSchema,
  vsphereCredentialsSchema,
  waitQuerySchema,
} from './api.ts';
import {
  drainAnswerSchema,
  drainRequestSchema,
  upgradeGrantSchema,
  upgradeRequestSchema,
  upgradeSlotRequestSchema,
  upgradeViewSchema,
  upgradedRequestSchema,
} from './upgrade.ts';

/**
 * The controller's routes, declared once: the server binds a handler to each entry (and
 * authorizes, validates and answers by it), the client builds its requests from the same entry.
 *
 * `access` says who may call a route: `anyone` without a token; `admin` the admin token;
 * `node` a node token of the path's cluster; `control-plane` the same, role master only;
 * `admin-or-node` either; `viewer` the admin token or a viewer token (also from the web view's
 * cookie); `metrics` the admin, a viewer or a metrics token. Node tokens never pass `viewer` or
 * `metrics`, and viewer and metrics tokens pass nothing else. A path with `{n}` must name the
 * token's own node.
 */

export type Access = 'anyone' | 'admin' | 'node' | 'control-plane' | 'admin-or-node' | 'viewer' | 'metrics';

type Schema = z.ZodType | undefined;
/** A route's answer when not JSON; see `produces`. */
type Produces = 'html' | 'text' | 'event-stream' | undefined;

export interface RouteSpec<
  Path extends string = string,
  Body extends Schema = Schema,
  Query extends Schema = Schema,
  Answer extends Schema = Schema,
  Who extends Access = Access,
  Kind extends Produces = Produces,
> {
  method: 'GET' | 'POST';
  /** `{c}` is a cluster id or name, `{n}` a node name; also what the request log shows. */
  path: Path;
  access: Who;
  /** Success status; 204 answers carry no body. */
  status: 200 | 201 | 204;
  body: Body;
  query: Query;
  answer: Answer;
  /** The request may wait up to `?wait=` seconds for a change (counted against the long-poll caps). */
  longPoll?: boolean;
  /**
   * What the answer is, when not JSON: a page, plain text (the Prometheus format), or a stream
   * of server-sent events that lasts until the client leaves.
   */
  produces?: Kind;
  /** The body is raw bytes (application/octet-stream), streamed to the handler rather than parsed as JSON. */
  upload?: boolean;
}

/** What a schema slot of a route takes on the client (`input`) and gives the server (`output`). */
export type SchemaInput<S extends Schema> = S extends z.ZodType ? z.input<S> : undefined;
export type SchemaOutput<S extends Schema> = S extends z.ZodType ? z.output<S> : undefined;

type Declared<
  Path extends string,
  Body extends Schema,
  Query extends Schema,
  Answer extends Schema,
  Who extends Access,
  Kind extends Produces,
> = Omit<RouteSpec<Path, Body, Query, Answer, Who, Kind>, 'body' | 'query' | 'answer'> &
  Partial<Pick<RouteSpec<Path, Body, Query, Answer, Who, Kind>, 'body' | 'query' | 'answer'>>;

function route<
  const Path extends string,
  const Who extends Access,
  Body extends Schema = undefined,
  Query extends Schema = undefined,
  Answer extends Schema = undefined,
  const Kind extends Produces = undefined,
>(spec: Declared<Path, Body, Query, Answer, Who, Kind>): RouteSpec<Path, Body, Query, Answer, Who, Kind> {
  return { body: undefined, query: undefined, answer: undefined, ...spec } as RouteSpec<Path, Body, Query, Answer, Who, Kind>;
}

const CLUSTER = '/v1/clusters/{c}';
const NODE = `${CLUSTER}/nodes/{n}` as const;

export const API = {
  livez: route({ method: 'GET', path: '/livez', access: 'anyone', status: 200, answer: z.object({ status: z.literal('ok') }) }),
  createCluster: route({
    method: 'POST',
    path: '/v1/clusters',
    access: 'admin',
    status: 201,
    body: clusterSpecSchema,
    answer: clusterSummarySchema,
  }),
  listClusters: route({ method: 'GET', path: '/v1/clusters', access: 'admin', status: 200, answer: clusterListSchema }),
  showCluster: route({ method: 'GET', path: CLUSTER, access: 'admin', status: 200, answer: clusterSummarySchema }),
  /** Mints a node token and renders the node's guestinfo. */
  nodeConfig: route({
    method: 'POST',
    path: `${CLUSTER}/nodes`,
    access: 'admin',
    status: 201,
    body: nodeConfigRequestSchema,
    answer: nodeConfigResponseSchema,
  }),
  revoke: route({
    method: 'POST',
    path: `${CLUSTER}/revocations`,
    access: 'admin',
    status: 200,
    body: revocationRequestSchema,
    answer: revocationResponseSchema,
  }),
  /** Removes a node from its cluster (drain, etcd member, keepalived peers, tokens), in the background; status shows each step. */
  removeNode: route({
    method: 'POST',
    path: `${CLUSTER}/removals`,
    access: 'admin',
    status: 200,
    body: removalRequestSchema,
    answer: nodeStatusSchema,
  }),
  /** The admin sets the vCenter connection for the vSphere CPI and CSI; the leader reads it. */
  setVsphere: route({ method: 'POST', path: `${CLUSTER}/vsphere`, access: 'admin', status: 204, body: vsphereCredentialsSchema }),
  getVsphere: route({ method: 'GET', path: `${CLUSTER}/vsphere`, access: 'control-plane', status: 200, answer: vsphereCredentialsSchema }),
  register: route({
    method: 'POST',
    path: `${NODE}/register`,
    access: 'node',
    status: 200,
    body: registerRequestSchema,
    answer: nodeStatusSchema,
  }),
  events: route({ method: 'POST', path: `${NODE}/events`, access: 'node', status: 204, body: eventsRequestSchema }),
  joined: route({ method: 'POST', path: `${NODE}/joined`, access: 'node', status: 204, body: joinedRequestSchema }),
  ready: route({ method: 'POST', path: `${NODE}/ready`, access: 'node', status: 204, body: readyRequestSchema }),
  claimLeader: route({
    method: 'POST',
    path: `${CLUSTER}/leader`,
    access: 'control-plane',
    status: 200,
    body: leaderClaimRequestSchema,
    answer: leaderClaimResponseSchema,
  }),
  leaderState: route({
    method: 'GET',
    path: `${CLUSTER}/leader`,
    access: 'control-plane',
    status: 200,
    query: leaderQuerySchema,
    answer: leaderStateSchema,
    longPoll: true,
  }),
  pki: route({ method: 'GET', path: `${CLUSTER}/pki`, access: 'control-plane', status: 200, answer: pkiBundleSchema }),
  join: route({
    method: 'POST',
    path: `${CLUSTER}/join`,
    access: 'node',
    status: 200,
    body: joinRequestSchema,
    query: waitQuerySchema,
    answer: joinGrantSchema,
    longPoll: true,
  }),
  controlPlane: route({
    method: 'GET',
    path: `${CLUSTER}/control-plane`,
    access: 'admin-or-node',
    status: 200,
    answer: controlPlaneViewSchema,
  }),
  status: route({ method: 'GET', path: `${CLUSTER}/status`, access: 'admin-or-node', status: 200, answer: clusterStatusSchema }),
  /** Every phase of every node, start to end: what `controller timeline` draws. */
  timeline: route({ method: 'GET', path: `${CLUSTER}/timeline`, access: 'viewer', status: 200, answer: timelineSchema }),
  createAccessToken: route({
    method: 'POST',
    path: '/v1/tokens',
    access: 'admin',
    status: 201,
    body: accessTokenRequestSchema,
    answer: accessTokenSchema,
  }),
  listAccessTokens: route({ method: 'GET', path: '/v1/tokens', access: 'admin', status: 200, answer: accessTokenListSchema }),
  revokeAccessToken: route({
    method: 'POST',
    path: '/v1/tokens/revocations',
    access: 'admin',
    status: 204,
    body: accessTokenRevocationSchema,
  }),
  /** Prometheus text format. */
  metrics: route({ method: 'GET', path: '/metrics', access: 'metrics', status: 200, produces: 'text' }),
  /** The web view: clusters, one cluster's nodes and formation timeline, updated live. */
  viewIndex: route({ method: 'GET', path: '/ui', access: 'viewer', status: 200, produces: 'html' }),
  viewCluster: route({ method: 'GET', path: '/ui/clusters/{c}', access: 'viewer', status: 200, produces: 'html' }),
  viewEvents: route({ method: 'GET', path: '/ui/clusters/{c}/events', access: 'viewer', status: 200, produces: 'event-stream' }),
  /** Exchanges the admin or a viewer token for the view's cookie (HttpOnly, Secure, SameSite=Strict, Path=/ui). */
  viewLogin: route({ method: 'POST', path: '/ui/login', access: 'anyone', status: 204, body: viewLoginSchema }),
  viewLogout: route({ method: 'POST', path: '/ui/logout', access: 'anyone', status: 204 }),
  /** A control-plane node reports the expiry of its leaf certificates (after a check or a renewal). */
  reportCertificates: route({
    method: 'POST',
    path: `${NODE}/certificates`,
    access: 'control-plane',
    status: 204,
    body: certificatesReportSchema,
  }),
  /** Whether this node may renew its certificates now; one control-plane node of a cluster at a time (a report with `renewedAt` ends it). */
  claimRenewal: route({
    method: 'POST',
    path: `${NODE}/certificates/renewal-claim`,
    access: 'control-plane',
    status: 200,
    answer: renewalClaimSchema,
  }),
  /** The admin asks for an etcd snapshot now; a control-plane node's next claim takes it. */
  requestBackup: route({ method: 'POST', path: `${CLUSTER}/backups`, access: 'admin', status: 201, answer: backupRequestResponseSchema }),
  listBackups: route({ method: 'GET', path: `${CLUSTER}/backups`, access: 'admin', status: 200, answer: backupListSchema }),
  /** Whether this node should take a snapshot now (scheduled or requested); one node of a cluster at a time. */
  claimBackup: route({ method: 'POST', path: `${NODE}/backup-claim`, access: 'control-plane', status: 200, answer: backupClaimSchema }),
  /** The snapshot of the claim `?id=`, raw, with its SHA-256; stored (0600) once every check passed. */
  uploadBackup: route({
    method: 'POST',
    path: `${NODE}/backups`,
    access: 'control-plane',
    status: 201,
    query: backupUploadQuerySchema,
    answer: backupRecordSchema,
    upload: true,
  }),
  /** Day two: a rolling Kubernetes upgrade (agent/protocol/upgrade.ts). */
  startUpgrade: route({
    method: 'POST',
    path: `${CLUSTER}/upgrade`,
    access: 'admin',
    status: 200,
    body: upgradeRequestSchema,
    answer: upgradeViewSchema,
  }),
  upgradeSlot: route({
    method: 'POST',
    path: `${NODE}/upgrade/slot`,
    access: 'node',
    status: 200,
    body: upgradeSlotRequestSchema,
    query: waitQuerySchema,
    answer: upgradeGrantSchema,
    longPoll: true,
  }),
  drain: route({
    method: 'POST',
    path: `${NODE}/upgrade/drain`,
    access: 'node',
    status: 200,
    body: drainRequestSchema,
    answer: drainAnswerSchema,
  }),
  uncordon: route({ method: 'POST', path: `${NODE}/upgrade/uncordon`, access: 'node', status: 204 }),
  upgraded: route({ method: 'POST', path: `${NODE}/upgraded`, access: 'node', status: 204, body: upgradedRequestSchema }),
  /** Sets a pool's size; the controller's provisioning clones or drains and destroys to reach it. */
  scalePool: route({
    method: 'POST',
    path: `${CLUSTER}/scale`,
    access: 'admin',
    status: 200,
    body: scaleRequestSchema,
    answer: clusterSummarySchema,
  }),
} as const;

export type RouteName = keyof typeof API;

/** The path parameters a pattern names: `{ c: string; n: string }` for `.../{c}/nodes/{n}/...`. */
export type PathParams<Path extends string> = Path extends `${string}{${infer Name}}${infer Rest}`
  ? { [K in Name]: string } & PathParams<Rest>
  : unknown;

/** The path of a route with its parameters filled in, each encoded as one path segment. */
export function routePath<Path extends string>(spec: RouteSpec<Path>, params: PathParams<Path>): string {
  const values = params as Record<string, string>;
  return spec.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = ownValue(values, name);
    if (value === undefined) throw new Error(`${spec.path} needs {${name}}`);
    return encodeURIComponent(value);
  });
}
