import { z } from 'zod';
import { ROLES } from '../config/schema.ts';

/**
 * The controller's HTTP API, shared by the controller (validates requests, shapes answers)
 * and the agent's client (builds requests, validates answers). JSON over HTTPS; every route
 * takes a bearer JWT. Paths are built only through `routes`.
 */

export const API_PREFIX = '/v1';
/** Request bodies above this are refused with 413. */
export const MAX_BODY_BYTES = 256 * 1024;

export const routes = {
  clusters: () => `${API_PREFIX}/clusters`,
  cluster: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}`,
  /** Admin: mint a node token and render the node's guestinfo. */
  nodeConfig: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}/nodes`,
  register: (cluster: string, node: string) => `${API_PREFIX}/clusters/${enc(cluster)}/nodes/${enc(node)}/register`,
  events: (cluster: string, node: string) => `${API_PREFIX}/clusters/${enc(cluster)}/nodes/${enc(node)}/events`,
  ready: (cluster: string, node: string) => `${API_PREFIX}/clusters/${enc(cluster)}/nodes/${enc(node)}/ready`,
  leader: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}/leader`,
  pki: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}/pki`,
  join: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}/join`,
  controlPlane: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}/control-plane`,
  status: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}/status`,
  revoke: (cluster: string) => `${API_PREFIX}/clusters/${enc(cluster)}/revocations`,
} as const;

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** Every non-2xx answer has this body. `field` names the offending key path on 400. */
export const apiErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
export type ApiError = z.infer<typeof apiErrorSchema>;

export const roleSchema = z.enum(ROLES);

// --- register ---------------------------------------------------------------------------
export const registerRequestSchema = z.strictObject({
  uuid: z.string().min(1).max(64),
  hostname: z.string().min(1).max(253),
  ips: z.array(z.string()).max(64),
  /** The IPv4 address on the VIP's network: keepalived peers and the API advertise address. */
  primaryIp: z.string(),
  agentVersion: z.string().max(64),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

export const nodeRecordSchema = z.object({
  name: z.string(),
  role: roleSchema,
  pool: z.string(),
  uuid: z.string(),
  hostname: z.string(),
  ips: z.array(z.string()),
  primaryIp: z.string(),
  registeredAt: z.string(),
  /** Last phase event, for status views. */
  phase: z.string().optional(),
  phaseState: z.enum(['running', 'done', 'failed']).optional(),
  lastError: z.string().optional(),
  readyAt: z.string().optional(),
});
export type NodeRecord = z.infer<typeof nodeRecordSchema>;

// --- leader lease -----------------------------------------------------------------------
/** Claim when `epoch` is absent; renew the lease of that epoch when present. */
export const leaderClaimRequestSchema = z.strictObject({
  epoch: z.number().int().positive().optional(),
});
export type LeaderClaimRequest = z.infer<typeof leaderClaimRequestSchema>;

export const leaderStateSchema = z.object({
  /** Current holder, absent when nobody holds a live lease. */
  holder: z.string().optional(),
  /** Increases with every new lease; a request carrying an older epoch is fenced (409). */
  epoch: z.number().int().nonnegative(),
  leaseExpiresAt: z.string().optional(),
  leaseTtlSeconds: z.number().int().positive(),
  /** The leader reported ready: the cluster's API is up and others may join. */
  ready: z.boolean(),
  /** The API server endpoint (VIP:port). */
  endpoint: z.string(),
});
export type LeaderState = z.infer<typeof leaderStateSchema>;

/** Answer to a claim: the state, and whether the caller is now the holder. */
export const leaderClaimResponseSchema = leaderStateSchema.extend({ granted: z.boolean() });
export type LeaderClaimResponse = z.infer<typeof leaderClaimResponseSchema>;

// GET leader?wait=SECONDS&epoch=E: answers at once if the state differs from (epoch, ready=false)
// as the caller knew it, else when the leader becomes ready, the lease changes, or the wait ends.

// --- pki ---------------------------------------------------------------------------------
/** The shared control-plane files, keyed by their path below /etc/kubernetes/pki. */
export const PKI_FILES = [
  'ca.crt',
  'ca.key',
  'sa.key',
  'sa.pub',
  'front-proxy-ca.crt',
  'front-proxy-ca.key',
  'etcd/ca.crt',
  'etcd/ca.key',
] as const;
export type PkiFile = (typeof PKI_FILES)[number];
export const pkiBundleSchema = z.object({
  files: z.record(z.enum(PKI_FILES), z.string()),
});
export type PkiBundle = z.infer<typeof pkiBundleSchema>;

// --- join ----------------------------------------------------------------------------------
/**
 * POST join?wait=SECONDS. For the leader (holding the lease of `epoch`): the init material.
 * For others: waits until the leader is ready (and, for control-plane nodes, a join slot is
 * free), then answers with a freshly minted token; 409 `not-ready` / `slot-busy` when the
 * wait ends first.
 */
export const joinRequestSchema = z.strictObject({
  epoch: z.number().int().positive().optional(),
});
export type JoinRequest = z.infer<typeof joinRequestSchema>;

export const joinGrantSchema = z.object({
  mode: z.enum(['init', 'join']),
  /** kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`. */
  token: z.string().regex(/^[a-z0-9]{6}\.[a-z0-9]{16}$/),
  tokenExpiresAt: z.string(),
  /** `sha256:` + hex SHA-256 of the cluster CA's DER SubjectPublicKeyInfo. */
  caCertHash: z.string().regex(/^sha256:[a-f0-9]{64}$/),
  /** The API server endpoint, VIP:port. */
  endpoint: z.string(),
  /** Control-plane joins only: the slot this node holds until it reports ready or the slot lease ends. */
  slot: z.object({ holder: z.string(), expiresAt: z.string() }).optional(),
});
export type JoinGrant = z.infer<typeof joinGrantSchema>;

// --- control plane view (keepalived peers) ---------------------------------------------------
export const controlPlaneViewSchema = z.object({
  vip: z.string(),
  port: z.number().int(),
  /** 1..255, derived from the cluster id. */
  virtualRouterId: z.number().int().min(1).max(255),
  leader: z.string().optional(),
  /** Registered control-plane nodes, in registration order. */
  nodes: z.array(z.object({ name: z.string(), primaryIp: z.string() })),
});
export type ControlPlaneView = z.infer<typeof controlPlaneViewSchema>;

// --- events and ready ----------------------------------------------------------------------
export const phaseEventSchema = z.strictObject({
  phase: z.string().min(1).max(64),
  type: z.enum(['start', 'end', 'fail']),
  at: z.string(),
  attempt: z.number().int().positive(),
  message: z.string().max(4096).optional(),
  command: z.string().max(4096).optional(),
  exitCode: z.number().int().optional(),
  stderrTail: z.string().max(8192).optional(),
});
export type PhaseEvent = z.infer<typeof phaseEventSchema>;
export const eventsRequestSchema = z.strictObject({ events: z.array(phaseEventSchema).min(1).max(500) });
export type EventsRequest = z.infer<typeof eventsRequestSchema>;

export const readyRequestSchema = z.strictObject({
  /** The leader uploads admin.conf so the controller can mint join tokens through the API. */
  adminKubeconfig: z.string().max(64 * 1024).optional(),
});
export type ReadyRequest = z.infer<typeof readyRequestSchema>;
