import { z } from 'zod';
import { nameRecord } from '../../core/records.ts';
import { LEAF_CERTIFICATES, accessTokenRoleSchema, clusterSpecSchema, roleSchema } from '../../protocol/api.ts';
import { UPGRADE_STRATEGIES } from '../../protocol/upgrade.ts';

/**
 * The controller's durable state: everything in `state.json`. Times are epoch milliseconds,
 * absolute, so that a restart keeps every lease and expiry exactly where it was. Private keys
 * are not here; they live in files next to it (see data-dir.ts).
 */

const epochMs = z.number().int().nonnegative();

/** A record keyed by names (cluster ids, node names, token ids), read into an object with no prototype. */
const byName = <V extends z.ZodType>(value: V) => z.record(z.string(), value).transform((record) => nameRecord(record));

const issuedTokenSchema = z.object({ jti: z.string(), expiresAt: epochMs });

const registrationSchema = z.object({
  uuid: z.string(),
  hostname: z.string(),
  ips: z.array(z.string()),
  primaryIp: z.string(),
  agentVersion: z.string(),
  registeredAt: epochMs,
  /** Registration order within the cluster (the control-plane view lists nodes by it): see nextRegistrationSeq. */
  seq: z.number().int().nonnegative(),
});

/** One run of a phase as the node reported it (its clock); `endedAt` absent while it runs. */
const phaseRunSchema = z.object({
  phase: z.string(),
  attempt: z.number().int().positive(),
  startedAt: epochMs,
  endedAt: epochMs.optional(),
  outcome: z.enum(['running', 'done', 'failed']),
  message: z.string().optional(),
});
export type PhaseRun = z.infer<typeof phaseRunSchema>;

/** One step of a node's removal (agent/controller/day-two/node-removal.ts). */
const removalStepSchema = z.object({
  state: z.enum(['running', 'done', 'skipped', 'failed']),
  at: epochMs,
  /** What the step did or found (skipped: why), or its error. */
  note: z.string().optional(),
});

/** `controller node remove`: journaled step by step, so that a restart or a rerun resumes it. */
const nodeRemovalSchema = z.object({
  requestedAt: epochMs,
  force: z.boolean(),
  timeoutSeconds: z.number().int().positive(),
  state: z.enum(['running', 'failed', 'done']),
  /** The step running, or the one that failed. */
  step: z.string().optional(),
  steps: byName(removalStepSchema),
  /** A control-plane node whose etcd member did not answer: removed from the survivors, no VIP hand-over. */
  dead: z.boolean().optional(),
});
export type NodeRemoval = z.infer<typeof nodeRemovalSchema>;

export const nodeStateSchema = z.object({
  name: z.string(),
  role: roleSchema,
  pool: z.string(),
  /** Node tokens minted for this node and not yet expired (revocation by node name uses them). */
  tokens: z.array(issuedTokenSchema),
  revokedAt: epochMs.optional(),
  registration: registrationSchema.optional(),
  phase: z.string().optional(),
  phaseState: z.enum(['running', 'done', 'failed']).optional(),
  phaseAt: epochMs.optional(),
  lastError: z.string().optional(),
  /** Every phase run reported, oldest first (the last MAX_PHASE_RUNS): the formation timeline. */
  phaseRuns: z.array(phaseRunSchema).optional(),
  /** What the controller granted this node (its init or join material); only such a node reports joined. */
  granted: z.enum(['init', 'join']).optional(),
  /** When the node reported its kubeadm init or join done. */
  joinedAt: epochMs.optional(),
  readyAt: epochMs.optional(),
  /** Id (not secret) of the last bootstrap token handed to this node, and when. */
  joinTokenId: z.string().optional(),
  joinTokenIssuedAt: epochMs.optional(),
  /** A control-plane node's leaf certificates as it last reported them (controller/backups and status read them). */
  certificates: z
    .object({
      checkedAt: epochMs,
      renewedAt: epochMs.optional(),
      items: z.array(z.object({ name: z.enum(LEAF_CERTIFICATES), notAfter: epochMs })),
    })
    .optional(),
  /** The VM the controller cloned for this name (provisioning): a register from another BIOS UUID is refused. */
  vm: z
    .object({ moref: z.string(), biosUuid: z.string(), createdAt: epochMs, ip: z.string().optional(), template: z.string().optional() })
    .optional(),
  /** How often this name's VM was destroyed and cloned again (failed or stalled), and why provisioning stopped. */
  vmReplacements: z.number().int().nonnegative().optional(),
  vmError: z.string().optional(),
  removal: nodeRemovalSchema.optional(),
  /** The removal finished: the node is out of the cluster (its tokens revoked with it). */
  removedAt: epochMs.optional(),
  /**
   * This node's part of the cluster's Kubernetes upgrade to `to` (day-two/upgrade.ts); in a rolling
   * replacement, `replacement` is the new node that takes its place (day-two/replacement-upgrade.ts).
   */
  upgrade: z
    .object({ to: z.string(), grantedAt: epochMs.optional(), upgradedAt: epochMs.optional(), replacement: z.string().optional() })
    .optional(),
});
export type NodeState = z.infer<typeof nodeStateSchema>;

const leaderLeaseSchema = z.object({
  epoch: z.number().int().nonnegative(),
  holder: z.string().optional(),
  expiresAt: epochMs.optional(),
  /** The leader's kubeadm init is done: the cluster exists, and the lease never ends. */
  initialized: z.boolean(),
  initializedAt: epochMs.optional(),
});

const backupClaimSchema = z.object({
  id: z.string(),
  node: z.string(),
  reason: z.enum(['scheduled', 'requested']),
  request: z.string().optional(),
  expiresAt: epochMs,
});
export type BackupClaimState = z.infer<typeof backupClaimSchema>;

const storedBackupSchema = z.object({
  id: z.string(),
  node: z.string(),
  reason: z.enum(['scheduled', 'requested']),
  request: z.string().optional(),
  takenAt: epochMs,
  storedAt: epochMs,
  bytes: z.number().int().nonnegative(),
  sha256: z.string(),
  revision: z.number().int().optional(),
});
export type StoredBackup = z.infer<typeof storedBackupSchema>;

const joinSlotSchema = z.object({ holder: z.string(), expiresAt: epochMs });
export type JoinSlot = z.infer<typeof joinSlotSchema>;

export const clusterStateSchema = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: epochMs,
  spec: clusterSpecSchema,
  caCertHash: z.string(),
  nodes: byName(nodeStateSchema),
  leader: leaderLeaseSchema,
  joinSlot: joinSlotSchema.optional(),
  /**
   * The init token of the lease of `epoch`, handed to its holder `node`; kept so that a rerun of
   * that leader gets the same one back. A new epoch gets a new token (absent: from before epochs
   * were recorded, never reused).
   */
  initToken: z
    .object({ token: z.string(), expiresAt: epochMs, epoch: z.number().int().optional(), node: z.string().optional() })
    .optional(),
  /** Revoked node-token ids, each kept until the token would have expired anyway. */
  revokedTokens: byName(epochMs),
  /** The control-plane node renewing its certificates now (controller/certificates/renewal-claim.ts). */
  certificateRenewal: z.object({ node: z.string(), grantedAt: epochMs, expiresAt: epochMs }).optional(),
  /** etcd snapshots: the admin's open request, the node that is taking one, and those stored (files in the data dir). */
  backups: z
    .object({
      requested: z.object({ id: z.string(), at: epochMs }).optional(),
      claim: backupClaimSchema.optional(),
      stored: z.array(storedBackupSchema),
    })
    .optional(),
  /**
   * The last Kubernetes upgrade: the nodes in the order they upgrade (the first control-plane
   * node runs `kubeadm upgrade apply`), and which of them holds the one upgrade slot. The slot has
   * no expiry: the next node goes only once its holder reports itself Ready on the new version.
   */
  upgrade: z
    .object({
      from: z.string(),
      to: z.string(),
      startedAt: epochMs,
      finishedAt: epochMs.optional(),
      order: z.array(z.string()),
      holder: z.string().optional(),
      /** Absent: in place (from before strategies). */
      strategy: z.enum(UPGRADE_STRATEGIES).optional(),
      /** `replace`: the template of the new version that new VMs are cloned from. */
      template: z.string().optional(),
      /** `replace`: when kubeadm's ClusterConfiguration was set to `to` (before the first new control-plane node joins). */
      kubeadmConfigAt: epochMs.optional(),
      /** `replace`: why the rollout cannot go on right now (the controller tries again on its next pass). */
      error: z.string().optional(),
    })
    .optional(),
  /** Why the last provisioning pass did not finish (no vCenter connection, a fault), cleared by one that does. */
  provisioningError: z.string().optional(),
});
export type ClusterState = z.infer<typeof clusterStateSchema>;

/** 2: the leader's `ready` became `initialized` (the cluster exists) and nodes report `joined`. */
export const STATE_FORMAT = 2;

/** A viewer or metrics token the admin minted; revoking it removes it, so only these pass. */
const accessTokenStateSchema = z.object({
  role: accessTokenRoleSchema,
  name: z.string().optional(),
  createdAt: epochMs,
  expiresAt: epochMs,
});
export type AccessTokenState = z.infer<typeof accessTokenStateSchema>;

export const controllerStateSchema = z.object({
  format: z.literal(STATE_FORMAT),
  /** The `jti` of the only admin token that is valid; a new admin.token replaces it. */
  adminTokenId: z.string(),
  /** Live viewer and metrics tokens by `jti` (absent in states written before they existed). */
  accessTokens: byName(accessTokenStateSchema).optional(),
  clusters: byName(clusterStateSchema),
});
export type ControllerState = z.infer<typeof controllerStateSchema>;

export function emptyState(adminTokenId: string): ControllerState {
  return { format: STATE_FORMAT, adminTokenId, clusters: nameRecord() };
}
