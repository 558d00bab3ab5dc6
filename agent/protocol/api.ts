import { z } from 'zod';
import { kubernetesVersion } from '../config/kubernetes-version.ts';
import {
  ROLES,
  addonsSchema,
  agentConfigSchema,
  controlPlaneEndpoint,
  dnsLabel,
  ipv4,
  nodeRuntimeFields,
  podCidr,
  serviceCidr,
} from '../config/schema.ts';
import { upgradeViewSchema } from './upgrade.ts';

/**
 * The controller's HTTP API, shared by the controller (validates requests, shapes answers)
 * and the agent's client (builds requests, validates answers). JSON over HTTPS; every route
 * but /livez takes a bearer JWT. The routes that carry these are declared in routes.ts.
 */

/** Request bodies above this are refused with 413. */
export const MAX_BODY_BYTES = 256 * 1024;
/** The longest long-poll a client may ask for (`?wait=`), in seconds. */
const MAX_WAIT_SECONDS = 300;

/** Error codes the controller answers with; clients branch on these, never on messages. */
export const API_ERROR_CODES = [
  'bad-request',
  'unauthorized',
  'token-expired',
  'token-revoked',
  'forbidden',
  'not-found',
  'conflict',
  /** The request carried a leader epoch whose lease has ended. */
  'fenced',
  /** A long-poll join ended before the leader had initialized the cluster. */
  'not-initialized',
  /** A long-poll control-plane join ended while another node held the join slot. */
  'slot-busy',
  'body-too-large',
  /** The controller could not reach the cluster's API to mint a bootstrap token; retry. */
  'cluster-api-unavailable',
  /** Too many connections or long-polls at once (in all, or of this node); retry later. */
  'overloaded',
  /** The controllers' shared store (etcd) did not take the write (no quorum, or replicas raced); retry. */
  'store-unavailable',
  'internal',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** Every non-2xx answer has this body. `field` names the offending key path on 400. */
export const apiErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
export type ApiError = z.infer<typeof apiErrorSchema>;

export const roleSchema = z.enum(ROLES);

const nodeName = z
  .string()
  .regex(
    /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'expected a lower-case host name (a-z, 0-9, -, .), at most 63 characters',
  );
const isoTime = z.string();

// --- clusters (admin) ------------------------------------------------------------------------
/** The etcd snapshot policy of a cluster (see "etcd backups" in the README). */
export const backupPolicySchema = z
  .strictObject({
    /** Hours between scheduled snapshots; 0: on demand only. */
    intervalHours: z
      .number()
      .int()
      .min(0)
      .max(24 * 31)
      .default(6),
    /** Snapshots kept; the oldest beyond this are deleted when a new one is stored. */
    retain: z.number().int().min(1).max(1000).default(14),
    /** The largest snapshot the controller takes, in bytes (etcd's default quota is 2 GiB). */
    maxBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .max(64 * 1024 ** 3)
      .default(4 * 1024 ** 3),
  })
  .default({ intervalHours: 6, retain: 14, maxBytes: 4 * 1024 ** 3 });
export type BackupPolicy = z.infer<typeof backupPolicySchema>;
/**
 * Where and how the controller clones a pool's VMs on vSphere. Paths are inventory paths, either
 * absolute (`/DC0/vm/pke`) or below the datacenter's folder of their kind (vm, host, datastore,
 * network).
 */
export const placementSchema = z.strictObject({
  /** The VM template (or VM) to clone; a linked clone when it has a snapshot. */
  template: z.string().min(1).max(1024),
  /** The VM folder the clones go into (default: the datacenter's VM folder). */
  folder: z.string().max(1024).default(''),
  /** A resource pool, or a cluster or host (its root resource pool), below the datacenter's host folder. */
  resourcePool: z.string().min(1).max(1024),
  datastore: z.string().min(1).max(1024).optional(),
  /** The network of the first network card. */
  network: z.string().min(1).max(1024).optional(),
  cpus: z.number().int().min(1).max(768).optional(),
  memoryMiB: z
    .number()
    .int()
    .min(256)
    .max(24 * 1024 * 1024)
    .optional(),
  /** The first disk grows to this size. */
  diskGiB: z
    .number()
    .int()
    .min(1)
    .max(62 * 1024)
    .optional(),
});
export type Placement = z.infer<typeof placementSchema>;

const poolSpecSchema = z.strictObject({
  name: dnsLabel,
  /** Node labels and taints of the pool's nodes, validated as the agent config validates them. */
  labels: agentConfigSchema.shape.labels,
  taints: agentConfigSchema.shape.taints,
  /** How many VMs the controller keeps in the pool (provisioning only). */
  size: z.number().int().min(0).max(500).optional(),
  placement: placementSchema.optional(),
});

/** The controller clones, powers on and replaces the VMs itself (on the cluster's vCenter connection). */
export const provisioningSchema = z.strictObject({
  /** A worker that makes no progress (no phase report) for this long is destroyed and replaced. */
  progressTimeoutSeconds: z.number().int().min(30).max(86400).default(900),
  /** How many times one worker's VM is replaced before the controller gives up on it. */
  maxReplacements: z.number().int().min(0).max(100).default(3),
});

/** The pool name control-plane nodes carry in their agent config. */
export const CONTROL_PLANE_POOL = 'control-plane';

export const clusterSpecSchema = z
  .strictObject({
    name: dnsLabel.max(40, 'at most 40 characters (the cluster id adds a suffix)'),
    kubernetesVersion,
    controlPlaneEndpoint,
    /** How many control-plane nodes the cluster is meant to have (shown in status). */
    controlPlaneNodes: z.number().int().min(1).max(9).default(3),
    pools: z
      .array(poolSpecSchema)
      .max(64)
      .default([{ name: 'workers', labels: {}, taints: [] }])
      .refine((pools) => new Set(pools.map((p) => p.name)).size === pools.length, 'pool names must be unique')
      .refine((pools) => pools.every((p) => p.name !== CONTROL_PLANE_POOL), `"${CONTROL_PLANE_POOL}" is reserved for control-plane nodes`),
    podCidr,
    serviceCidr,
    /** Installed by the leader after init: the CNI (its pod CIDR is podCidr) and MetalLB. */
    addons: addonsSchema,
    /** How this site's hosts run containers, handed to every node's agent config. */
    ...nodeRuntimeFields,
    /** Lifetime of the node tokens that node-config puts into guestinfo. */
    nodeTokenTtlSeconds: z
      .number()
      .int()
      .min(60)
      .max(365 * 86400)
      .default(86400),
    /** Leader lease; renewed by the holder until it reports the cluster initialized. */
    leaseTtlSeconds: z.number().int().min(1).max(3600).default(30),
    /** How long one control-plane join may hold the join slot. */
    joinSlotTtlSeconds: z.number().int().min(1).max(86400).default(600),
    /** Lifetime of each kubeadm bootstrap token handed to a joining node. */
    bootstrapTokenTtlSeconds: z.number().int().min(10).max(86400).default(900),
    /** etcd snapshots: how often one is taken, how many the controller keeps, how large one may be. */
    backups: backupPolicySchema,
    /** Lifetime of the leader's init token (covers the whole init). */
    initTokenTtlSeconds: z
      .number()
      .int()
      .min(600)
      .max(7 * 86400)
      .default(7200),
    /** Where the control plane's VMs are cloned (provisioning only; their number is controlPlaneNodes). */
    controlPlanePlacement: placementSchema.optional(),
    /** Present: the controller provisions every VM of the cluster on vSphere and keeps each pool at its size. */
    provisioning: provisioningSchema.optional(),
  })
  .superRefine((spec, context) => {
    if (spec.provisioning === undefined) return;
    if (spec.controlPlanePlacement === undefined)
      context.addIssue({ code: 'custom', path: ['controlPlanePlacement'], message: 'required when the controller provisions the VMs' });
    spec.pools.forEach((pool, index) => {
      if (pool.size === undefined)
        context.addIssue({ code: 'custom', path: ['pools', index, 'size'], message: 'required when the controller provisions the VMs' });
      else if (pool.size > 0 && pool.placement === undefined)
        context.addIssue({ code: 'custom', path: ['pools', index, 'placement'], message: 'required for a pool the controller provisions' });
      if (`${spec.name}-${pool.name}-${pool.size ?? 0}`.length > 63)
        context.addIssue({
          code: 'custom',
          path: ['pools', index, 'name'],
          message: `too long: VM names ${spec.name}-${pool.name}-N must fit 63 characters`,
        });
    });
  });
export type ClusterSpec = z.infer<typeof clusterSpecSchema>;
export type ClusterSpecInput = z.input<typeof clusterSpecSchema>;

export const clusterSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: isoTime,
  spec: clusterSpecSchema,
  /** kubeadm's `--discovery-token-ca-cert-hash` for this cluster's CA. */
  caCertHash: z.string(),
  virtualRouterId: z.number().int(),
  nodes: z.number().int(),
  /** The leader's kubeadm init is done: the cluster's API is up behind the VIP. */
  initialized: z.boolean(),
});
export type ClusterSummary = z.infer<typeof clusterSummarySchema>;
export const clusterListSchema = z.object({ clusters: z.array(clusterSummarySchema) });
export type ClusterList = z.infer<typeof clusterListSchema>;

// --- node-config (admin) -----------------------------------------------------------------------
export const nodeConfigRequestSchema = z.strictObject({
  name: nodeName,
  role: roleSchema,
  /** Worker pool; defaults to the cluster's first pool. Control-plane nodes have no pool. */
  pool: dnsLabel.optional(),
  /** Node token lifetime; defaults to the cluster's nodeTokenTtlSeconds. */
  tokenTtlSeconds: z
    .number()
    .int()
    .min(60)
    .max(365 * 86400)
    .optional(),
});
export type NodeConfigRequest = z.infer<typeof nodeConfigRequestSchema>;

/** The guestinfo keys one VM needs, each value as it goes into ExtraConfig. */
const guestinfoSchema = z.record(z.string(), z.string());
export type Guestinfo = z.infer<typeof guestinfoSchema>;

export const nodeConfigResponseSchema = z.object({
  cluster: z.object({ id: z.string(), name: z.string() }),
  node: z.string(),
  role: roleSchema,
  pool: z.string(),
  tokenId: z.string(),
  tokenExpiresAt: isoTime,
  guestinfo: guestinfoSchema,
  /** Sum of the lengths of every guestinfo key and value. */
  encodedBytes: z.number().int(),
});
export type NodeConfigResponse = z.infer<typeof nodeConfigResponseSchema>;

// --- revocations (admin) -----------------------------------------------------------------------
export const revocationRequestSchema = z
  .strictObject({ jti: z.string().min(1).max(64).optional(), node: nodeName.optional() })
  .refine((r) => (r.jti === undefined) !== (r.node === undefined), 'give exactly one of jti or node');
export type RevocationRequest = z.infer<typeof revocationRequestSchema>;
export const revocationResponseSchema = z.object({ revoked: z.array(z.string()) });
export type RevocationResponse = z.infer<typeof revocationResponseSchema>;

// --- node removal (admin) ----------------------------------------------------------------------
/** POST removals: starts removing a node, or resumes a removal that failed; answers its status. */
export const removalRequestSchema = z.strictObject({
  node: nodeName,
  /** Evict pods with no controller, and delete at the timeout what a disruption budget still protects. */
  force: z.boolean().default(false),
  /** How long the drain may take. */
  timeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(24 * 3600, 'at most 24 h')
    .default(300),
});
export type RemovalRequest = z.input<typeof removalRequestSchema>;

// --- register ---------------------------------------------------------------------------
export const registerRequestSchema = z.strictObject({
  uuid: z.string().min(1).max(64),
  hostname: z.string().min(1).max(253),
  ips: z.array(z.string().max(64)).max(64),
  /** The IPv4 address on the VIP's network: keepalived peers and the API advertise address. */
  primaryIp: ipv4,
  agentVersion: z.string().max(64),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

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
  /** Absent once the cluster is initialized: from then on the lease does not expire. */
  leaseExpiresAt: z.string().optional(),
  leaseTtlSeconds: z.number().int().positive(),
  /**
   * The leader reported its kubeadm init done: the cluster exists, its API is up behind the
   * VIP, and others may join. A cluster is initialized once, so the lease never ends after it.
   */
  initialized: z.boolean(),
  /** The API server endpoint (VIP:port). */
  endpoint: z.string(),
});
export type LeaderState = z.infer<typeof leaderStateSchema>;

/**
 * GET leader?wait=SECONDS&epoch=E&initialized=B: answers at once when the state differs from
 * what the caller knew (another epoch, another `initialized`, or no live lease), else as soon
 * as it does (the cluster was initialized, the lease changed or expired), or when the wait ends.
 */
export const leaderQuerySchema = z.object({
  wait: z.coerce.number().int().min(0).max(MAX_WAIT_SECONDS).default(0),
  epoch: z.coerce.number().int().nonnegative().optional(),
  initialized: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
});

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

// --- vsphere (admin sets, the leader reads) ---------------------------------------------------
/**
 * The vCenter connection of a cluster's vSphere CPI and CSI. Kept by the controller in its data
 * dir (0600), never in the state, guestinfo, status or logs; handed only to the lease holder.
 */
export const vsphereCredentialsSchema = z.strictObject({
  server: z.string().regex(/^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, 'expected the vCenter host name or IP address'),
  /** vCenter's HTTPS port, when not 443. */
  port: z.number().int().min(1).max(65535).optional(),
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
  /** PEM CA certificates that vCenter's certificate must chain to (default: the system's). */
  ca: z
    .string()
    .max(64 * 1024)
    .optional(),
  datacenters: z.array(z.string().min(1).max(256)).min(1).max(32),
  /** Skip TLS verification of vCenter: only for labs with self-signed certificates. */
  insecure: z.boolean().default(false),
  thumbprint: z
    .string()
    .regex(/^([0-9A-Fa-f]{2}:){19,31}[0-9A-Fa-f]{2}$/, 'expected a SHA-1 or SHA-256 fingerprint, hex pairs joined by colons')
    .optional(),
});
export type VsphereCredentials = z.infer<typeof vsphereCredentialsSchema>;
export type VsphereCredentialsInput = z.input<typeof vsphereCredentialsSchema>;

// --- join ----------------------------------------------------------------------------------
/**
 * POST join?wait=SECONDS. For the lease holder: the init material (`mode: init`, a token with
 * the cluster's initTokenTtlSeconds; within the same lease epoch, the same token again while
 * half its lifetime is left; a new epoch gets a new token). For
 * others: waits until the cluster is initialized (and, for control-plane nodes, the join slot
 * is free or already theirs), then answers with a freshly minted token; 409 `not-initialized` /
 * `slot-busy` when the wait ends first.
 */
export const joinRequestSchema = z.strictObject({
  epoch: z.number().int().positive().optional(),
});
export type JoinRequest = z.infer<typeof joinRequestSchema>;
export const waitQuerySchema = z.object({
  wait: z.coerce.number().int().min(0).max(MAX_WAIT_SECONDS).default(0),
});

export const joinGrantSchema = z.object({
  mode: z.enum(['init', 'join']),
  /** kubeadm bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`. */
  token: z.string().regex(/^[a-z0-9]{6}\.[a-z0-9]{16}$/),
  tokenExpiresAt: z.string(),
  /** `sha256:` + hex SHA-256 of the cluster CA's DER SubjectPublicKeyInfo. */
  caCertHash: z.string().regex(/^sha256:[a-f0-9]{64}$/),
  /** The API server endpoint, VIP:port. */
  endpoint: z.string(),
  /** Control-plane joins only: the slot this node holds until it reports joined or the slot lease ends. */
  slot: z.object({ holder: z.string(), expiresAt: z.string() }).optional(),
});
export type JoinGrant = z.infer<typeof joinGrantSchema>;

/**
 * Answer to a claim: the state, and whether the caller is now the holder. A holder of a cluster
 * not initialized yet also gets its init material, as POST join answers the holder: the new
 * leader starts kubeadm init without another request.
 */
export const leaderClaimResponseSchema = leaderStateSchema.extend({ granted: z.boolean(), init: joinGrantSchema.optional() });
export type LeaderClaimResponse = z.infer<typeof leaderClaimResponseSchema>;

// --- control plane view (keepalived peers) ---------------------------------------------------
export const controlPlaneViewSchema = z.object({
  vip: z.string(),
  port: z.number().int(),
  /** 1..255, `virtualRouterId(clusterId)`. */
  virtualRouterId: z.number().int().min(1).max(255),
  leader: z.string().optional(),
  /** Registered control-plane nodes, in registration order. */
  nodes: z.array(
    z.object({
      name: z.string(),
      primaryIp: z.string(),
      /** Being removed: the node itself stops keepalived (the VIP moves first) and reports `vip-release`. */
      leaving: z.boolean().optional(),
    }),
  ),
});
export type ControlPlaneView = z.infer<typeof controlPlaneViewSchema>;
/** The phase a leaving node reports done once its `vip sync` has stopped keepalived (the VIP moved to a peer). */
export const VIP_RELEASE_PHASE = 'vip-release';

// --- events, joined, ready -----------------------------------------------------------------
export const phaseEventSchema = z.strictObject({
  phase: z.string().min(1).max(64),
  type: z.enum(['start', 'end', 'fail']),
  at: z.string().max(64),
  attempt: z.number().int().positive(),
  message: z.string().max(4096).optional(),
  command: z.string().max(4096).optional(),
  exitCode: z.number().int().optional(),
  stderrTail: z.string().max(8192).optional(),
});
export type PhaseEvent = z.infer<typeof phaseEventSchema>;
export const eventsRequestSchema = z.strictObject({ events: z.array(phaseEventSchema).min(1).max(500) });
export type EventsRequest = z.infer<typeof eventsRequestSchema>;

/**
 * POST nodes/{n}/joined: this node is a cluster member (its kubeadm init or join is done). The
 * leader hands over admin.conf, which marks the cluster initialized: the lease stops expiring
 * and the joins open. A control-plane node frees the join slot for the next one.
 */
export const joinedRequestSchema = z.strictObject({
  /** The leader only: admin.conf, so the controller can mint join tokens through the API. */
  adminKubeconfig: z
    .string()
    .max(64 * 1024)
    .optional(),
  /** The leader's lease epoch; a report from an ended lease is fenced (409). */
  epoch: z.number().int().positive().optional(),
});
export type JoinedRequest = z.infer<typeof joinedRequestSchema>;

/** POST nodes/{n}/ready: this node's kubelet is Ready and its bootstrap is done. */
export const readyRequestSchema = z.strictObject({});
export type ReadyRequest = z.infer<typeof readyRequestSchema>;

// --- certificates (control plane reports) --------------------------------------------------
/** `pke-agent status` and `controller status` warn when a certificate expires within this many days. */
export const CERT_WARNING_DAYS = 30;

/**
 * The leaf certificates kubeadm makes on a control-plane node and `kubeadm certs renew all`
 * renews: files below /etc/kubernetes/pki, and the client certificates inside kubeconfigs below
 * /etc/kubernetes. The kubelet's own client certificate rotates by itself and is not here.
 */
export const LEAF_CERTIFICATES = [
  'apiserver.crt',
  'apiserver-kubelet-client.crt',
  'apiserver-etcd-client.crt',
  'front-proxy-client.crt',
  'etcd/server.crt',
  'etcd/peer.crt',
  'etcd/healthcheck-client.crt',
  'admin.conf',
  'super-admin.conf',
  'controller-manager.conf',
  'scheduler.conf',
] as const;
export type LeafCertificate = (typeof LEAF_CERTIFICATES)[number];

/** POST nodes/{n}/certificates: the expiry of each leaf certificate on a control-plane node. */
export const certificatesReportSchema = z.strictObject({
  checkedAt: isoTime.max(64),
  /** When this node last ran `kubeadm certs renew all`, if it has. */
  renewedAt: isoTime.max(64).optional(),
  /**
   * After a renewal: the node's renewed admin.conf, so that the controller's copy (the leader's,
   * from init, with a one-year client certificate) does not expire under it.
   */
  adminKubeconfig: z
    .string()
    .max(64 * 1024)
    .optional(),
  certificates: z
    .array(z.strictObject({ name: z.enum(LEAF_CERTIFICATES), notAfter: isoTime.max(64) }))
    .min(1)
    .max(LEAF_CERTIFICATES.length)
    .refine((list) => new Set(list.map((c) => c.name)).size === list.length, 'each certificate once'),
});
export type CertificatesReport = z.infer<typeof certificatesReportSchema>;

/**
 * POST nodes/{n}/certificates/renewal-claim: a control-plane node whose certificates are due asks
 * whether it may renew (and restart its static pods) now. One node of a cluster holds the claim
 * at a time, until its report of the finished renewal or the claim's expiry; the others are told
 * who holds it and until when, and renew on a later run.
 */
export const renewalClaimSchema = z.discriminatedUnion('granted', [
  z.object({ granted: z.literal(true), expiresAt: isoTime }),
  z.object({ granted: z.literal(false), holder: z.string(), expiresAt: isoTime }),
]);
export type RenewalClaim = z.infer<typeof renewalClaimSchema>;

// --- etcd backups --------------------------------------------------------------------------
const backupId = z.string().regex(/^[0-9]{8}T[0-9]{6}Z-[a-f0-9]{8}$/, 'expected a backup id as the controller makes them');

export const backupRecordSchema = z.object({
  id: z.string(),
  node: z.string(),
  /** `scheduled` by the cluster's interval, or `requested` by `controller cluster backup`. */
  reason: z.enum(['scheduled', 'requested']),
  /** The id of the request it answers (on-demand snapshots). */
  request: z.string().optional(),
  takenAt: isoTime,
  storedAt: isoTime,
  bytes: z.number().int(),
  sha256: z.string(),
  /** etcd's revision at the snapshot, as the node read it from the snapshot. */
  revision: z.number().int().optional(),
  /** Where the controller keeps it (in its data dir, 0600). */
  file: z.string(),
});
export type BackupRecord = z.infer<typeof backupRecordSchema>;
export const backupListSchema = z.object({ backups: z.array(backupRecordSchema), pending: z.string().optional() });
export type BackupList = z.infer<typeof backupListSchema>;

/** POST backups (admin): asks for a snapshot now; the answer names the request the stored backup will carry. */
export const backupRequestResponseSchema = z.object({ request: z.string(), requestedAt: isoTime });
export type BackupRequestResponse = z.infer<typeof backupRequestResponseSchema>;

/**
 * POST nodes/{n}/backup-claim: a control-plane node asks whether it should take a snapshot now
 * (its timer asks every minute). At most one node of a cluster holds the claim; a claim not
 * answered with an upload within its time goes to the next node that asks.
 */
export const backupClaimSchema = z.object({
  due: z.boolean(),
  id: backupId.optional(),
  reason: z.enum(['scheduled', 'requested']).optional(),
  expiresAt: isoTime.optional(),
});
export type BackupClaim = z.infer<typeof backupClaimSchema>;

/** POST nodes/{n}/backups?id=&sha256=&takenAt=&revision=: the snapshot file as the raw body (application/octet-stream). */
export const backupUploadQuerySchema = z.object({
  id: backupId,
  sha256: z.string().regex(/^[a-f0-9]{64}$/, 'expected the hex SHA-256 of the body'),
  takenAt: isoTime.max(64),
  revision: z.coerce.number().int().nonnegative().optional(),
});

// --- status ----------------------------------------------------------------------------------
export const nodeStatusSchema = z.object({
  name: z.string(),
  role: roleSchema,
  pool: z.string(),
  /** `pending`: config rendered, never registered; `revoked`: its tokens were revoked; `removing`/`removed`: `node remove`. */
  state: z.enum(['pending', 'registered', 'bootstrapping', 'failed', 'ready', 'revoked', 'removing', 'removed']),
  uuid: z.string().optional(),
  hostname: z.string().optional(),
  primaryIp: z.string().optional(),
  ips: z.array(z.string()),
  registeredAt: z.string().optional(),
  phase: z.string().optional(),
  phaseState: z.enum(['running', 'done', 'failed']).optional(),
  phaseAt: z.string().optional(),
  lastError: z.string().optional(),
  joinedAt: z.string().optional(),
  readyAt: z.string().optional(),
  /** The earliest expiry among the certificates this control-plane node last reported, and when it reported. */
  certificatesExpireAt: z.string().optional(),
  certificatesCheckedAt: z.string().optional(),
  certificatesRenewedAt: z.string().optional(),
  /** The VM the controller provisioned for this name (provisioning only). */
  vm: z
    .object({
      moref: z.string(),
      biosUuid: z.string(),
      ip: z.string().optional(),
      /** The template it was cloned from. */
      template: z.string().optional(),
      replacements: z.number().int(),
      error: z.string().optional(),
    })
    .optional(),
  /** `controller node remove`, step by step. */
  removal: z
    .object({
      state: z.enum(['running', 'failed', 'done']),
      step: z.string().optional(),
      dead: z.boolean().optional(),
      steps: z.array(
        z.object({
          name: z.string(),
          state: z.enum(['running', 'done', 'skipped', 'failed']),
          at: z.string(),
          note: z.string().optional(),
        }),
      ),
    })
    .optional(),
});
export type NodeStatus = z.infer<typeof nodeStatusSchema>;

export const clusterStatusSchema = z.object({
  cluster: z.object({
    id: z.string(),
    name: z.string(),
    kubernetesVersion: z.string(),
    endpoint: z.string(),
    controlPlaneNodes: z.number().int(),
    virtualRouterId: z.number().int(),
  }),
  leader: z.object({
    holder: z.string().optional(),
    epoch: z.number().int(),
    leaseExpiresAt: z.string().optional(),
    initialized: z.boolean(),
    initializedAt: z.string().optional(),
  }),
  joinSlot: z.object({ holder: z.string(), expiresAt: z.string() }).optional(),
  /** The control-plane node renewing its certificates now (it holds the renewal claim). */
  certificateRenewal: z.object({ holder: z.string(), expiresAt: z.string() }).optional(),
  nodes: z.array(nodeStatusSchema),
  /** The newest stored etcd snapshot, and one asked for and not stored yet. */
  backups: z.object({ latest: backupRecordSchema.optional(), stored: z.number().int(), pending: z.string().optional() }).optional(),
  /** What needs the operator: certificates within CERT_WARNING_DAYS of expiry, overdue snapshots. */
  warnings: z.array(z.string()).optional(),
  /** The last Kubernetes upgrade, node by node (day two). */
  upgrade: upgradeViewSchema.optional(),
  /** Each pool's size and what provisioning is doing (absent when the controller does not provision). */
  provisioning: z
    .object({
      pools: z.array(z.object({ name: z.string(), size: z.number().int(), vms: z.number().int() })),
      error: z.string().optional(),
    })
    .optional(),
});

// --- pools (admin) ----------------------------------------------------------------------------
/** POST scale: the pool's new size. Growing clones; shrinking drains, deletes and destroys workers. */
export const scaleRequestSchema = z.strictObject({ pool: dnsLabel, size: z.number().int().min(0).max(500) });
export type ScaleRequest = z.infer<typeof scaleRequestSchema>;
export type ClusterStatus = z.infer<typeof clusterStatusSchema>;

// --- access tokens (admin mints them for people and monitoring) -------------------------------
/**
 * `viewer`: the read-only web view, the timeline and /metrics; `metrics`: /metrics only (for a
 * Prometheus scrape config). Neither can change anything.
 */
export const ACCESS_TOKEN_ROLES = ['viewer', 'metrics'] as const;
export const accessTokenRoleSchema = z.enum(ACCESS_TOKEN_ROLES);
export type AccessTokenRole = z.infer<typeof accessTokenRoleSchema>;

export const accessTokenRequestSchema = z.strictObject({
  role: accessTokenRoleSchema,
  /** Who or what the token is for (shown by `token list`). */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][-A-Za-z0-9_.@]{0,63}$/, 'expected letters, digits, - _ . @, at most 64 characters')
    .optional(),
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(365 * 86400)
    .default(30 * 86400),
});
export type AccessTokenRequest = z.input<typeof accessTokenRequestSchema>;

const accessTokenInfoSchema = z.object({
  jti: z.string(),
  role: accessTokenRoleSchema,
  name: z.string().optional(),
  createdAt: isoTime,
  expiresAt: isoTime,
});
export type AccessTokenInfo = z.infer<typeof accessTokenInfoSchema>;
export const accessTokenSchema = accessTokenInfoSchema.extend({ token: z.string() });
export type AccessToken = z.infer<typeof accessTokenSchema>;
export const accessTokenListSchema = z.object({ tokens: z.array(accessTokenInfoSchema) });
export type AccessTokenList = z.infer<typeof accessTokenListSchema>;
export const accessTokenRevocationSchema = z.strictObject({ jti: z.string().min(1).max(64) });

/** POST /ui/login: the admin or a viewer token, exchanged for the view's cookie. */
export const viewLoginSchema = z.strictObject({ token: z.string().min(1).max(4096) });

// --- timeline ------------------------------------------------------------------------------------
/** One run of one phase on one node, from its start report to its end or failure report. */
export const phaseSpanSchema = z.object({
  phase: z.string(),
  attempt: z.number().int().positive(),
  startedAt: isoTime,
  /** Absent while the phase runs. */
  endedAt: isoTime.optional(),
  outcome: z.enum(['running', 'done', 'failed']),
  /** The failure report's message (with its command and exit code). */
  message: z.string().optional(),
});
export type PhaseSpan = z.infer<typeof phaseSpanSchema>;

/**
 * A cluster's formation, node by node: every phase's start and end as the nodes reported them
 * (their clocks). Nodes in formation order: the leader, the other control-plane nodes in the
 * order they joined, then the workers.
 */
export const timelineSchema = z.object({
  cluster: z.object({ id: z.string(), name: z.string() }),
  /** When the controller answered: where running phases end for now. */
  now: isoTime,
  /** The node that ran kubeadm init. */
  leader: z.string().optional(),
  initializedAt: isoTime.optional(),
  nodes: z.array(
    z.object({
      name: z.string(),
      role: roleSchema,
      pool: z.string(),
      state: nodeStatusSchema.shape.state,
      /**
       * When the controller granted the node its join (controller clock): the part of its
       * kube-join before it was waiting, for the leader's init or the join slot.
       */
      joinGrantedAt: isoTime.optional(),
      spans: z.array(phaseSpanSchema),
    }),
  ),
});
export type Timeline = z.infer<typeof timelineSchema>;
