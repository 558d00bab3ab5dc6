import { z } from 'zod';
import { kubernetesVersion } from '../config/kubernetes-version.ts';

/**
 * The protocol of a rolling Kubernetes upgrade (day two): the admin starts it, each node's
 * `pke-agent upgrade` long-polls for its turn (the upgrade slot, handed out one node at a time
 * as the join slot is), asks the controller to drain and uncordon it, and reports itself upgraded.
 */

/**
 * How the nodes get the new version: `in-place`, each node's `pke-agent upgrade` runs kubeadm
 * upgrade on it; `replace` (a cluster the controller provisions), a new VM cloned from `template`
 * (which carries the new version) joins, then the old node is removed, one node at a time.
 */
export const UPGRADE_STRATEGIES = ['in-place', 'replace'] as const;
export type UpgradeStrategy = (typeof UPGRADE_STRATEGIES)[number];

/** POST clusters/{c}/upgrade (admin): upgrade the cluster to `to`, one minor version at a time. */
export const upgradeRequestSchema = z
  .strictObject({
    to: kubernetesVersion,
    strategy: z.enum(UPGRADE_STRATEGIES).default('in-place'),
    /** The inventory path of the VM template of the new version (`replace` only). */
    template: z.string().min(1).max(1024).optional(),
  })
  .superRefine((request, context) => {
    if (request.strategy === 'replace' && request.template === undefined)
      context.addIssue({
        code: 'custom',
        path: ['template'],
        message: 'required for a rolling replacement: the template of the new version',
      });
    if (request.strategy === 'in-place' && request.template !== undefined)
      context.addIssue({ code: 'custom', path: ['template'], message: 'only a rolling replacement (strategy replace) clones a template' });
  });
export type UpgradeRequest = z.input<typeof upgradeRequestSchema>;

export const UPGRADE_NODE_STATES = ['waiting', 'upgrading', 'failed', 'upgraded'] as const;

/** The rollout as status shows it: its nodes in the order they take the slot. */
export const upgradeViewSchema = z.object({
  from: z.string(),
  to: z.string(),
  strategy: z.enum(UPGRADE_STRATEGIES),
  /** The template new VMs are cloned from (`replace`). */
  template: z.string().optional(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  /** The node holding the upgrade slot, if any. */
  holder: z.string().optional(),
  /** Where the rollout stopped: the holder's failed step. */
  stopped: z.object({ node: z.string(), phase: z.string(), error: z.string().optional() }).optional(),
  nodes: z.array(
    z.object({
      name: z.string(),
      role: z.enum(['master', 'worker']),
      /** In place: `apply` on the first control-plane node, `node` on every other; `replace`: a new VM takes its place. */
      mode: z.enum(['apply', 'node', 'replace']),
      /** `replace`: the new node that takes this one's place. */
      replacement: z.string().optional(),
      state: z.enum(UPGRADE_NODE_STATES),
      phase: z.string().optional(),
      startedAt: z.string().optional(),
      upgradedAt: z.string().optional(),
      /** Slot granted to upgraded report (`replace`: the new VM asked for to the old node removed), in seconds. */
      seconds: z.number().optional(),
    }),
  ),
});
export type UpgradeView = z.infer<typeof upgradeViewSchema>;

/** The answer to a node whose turn it is. */
export const upgradeGrantSchema = z.object({
  to: z.string(),
  mode: z.enum(['apply', 'node']),
  grantedAt: z.string(),
});
export type UpgradeGrant = z.infer<typeof upgradeGrantSchema>;

/** POST nodes/{n}/upgrade/slot?wait=S: the version this node's run upgrades to, checked by the controller. */
export const upgradeSlotRequestSchema = z.strictObject({ to: kubernetesVersion });
export type UpgradeSlotRequest = z.infer<typeof upgradeSlotRequestSchema>;

/** POST nodes/{n}/upgrade/drain: cordon and evict, by the controller through the cluster's API. */
export const drainRequestSchema = z.strictObject({
  /** How long evictions may be refused (PodDisruptionBudgets) before the drain fails. */
  timeoutSeconds: z.number().int().min(1).max(3600).default(300),
});
export type DrainRequest = z.input<typeof drainRequestSchema>;
export const drainAnswerSchema = z.object({ evicted: z.array(z.string()) });
export type DrainAnswer = z.infer<typeof drainAnswerSchema>;

/** POST nodes/{n}/upgraded: this node runs `to`, Ready; the controller checks the Node and frees the slot. */
export const upgradedRequestSchema = z.strictObject({ to: kubernetesVersion });
export type UpgradedRequest = z.infer<typeof upgradedRequestSchema>;
