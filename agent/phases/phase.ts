import type { AgentConfig } from '../config/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import type { NodeFacts } from '../node/facts.ts';
import type { JoinGrant } from '../protocol/api.ts';
import type { NodeApi } from '../protocol/node-api.ts';

/**
 * What phases hand to later phases (and to later runs: the journal keeps it). Each phase that
 * produces something adds its own key here, so readers get a typed value.
 */
export interface PhaseOutputs {
  register?: RegisterOutput;
  elect?: ElectOutput;
  [phase: string]: unknown;
}

/** What `register` learned about this node and told the controller. */
export interface RegisterOutput {
  nodeName: string;
  /** The IPv4 address on the VIP's network: API advertise address and keepalived source. */
  primaryIp: string;
  /** The interface that carries primaryIp (and the VIP on control-plane nodes). */
  interface: string;
  ips: string[];
  /** The VM's BIOS UUID, as vSphere knows it (the kubelet's providerID with an external cloud provider). */
  biosUuid?: string;
}

/** The election's outcome. Workers do not take part: `leader` is false and `epoch` absent. */
export interface ElectOutput {
  leader: boolean;
  /** The lease epoch this node holds, when it is the leader. */
  epoch?: number;
}

/** Everything a phase may use. Phases never import each other; they share data only through `outputs`. */
export interface PhaseContext {
  config: AgentConfig;
  host: Host;
  /** The controller, as this node's token allows it to be used. */
  controller: NodeApi;
  log: Logger;
  /** Outputs of phases that are done, in this run or an earlier one. */
  outputs: Readonly<PhaseOutputs>;
  /** Aborted when the agent is asked to stop (SIGTERM, SIGINT) or loses its leader lease. */
  signal: AbortSignal;
  /** Keeps the leader lease alive while this node holds it. */
  lease: LeaseHolder;
  /** What the machine is: gathered at the first call of a run, the same answer after. */
  facts: () => Promise<NodeFacts>;
}

/** Renews the leader lease in the background from `hold` until `release`. */
export interface LeaseHolder {
  /**
   * Renews at a third of `ttlSeconds`, the lease's TTL as the controller granted it. `init` is
   * the init material the claim answer carried, kept in memory only (its token is a secret).
   */
  hold(epoch: number, ttlSeconds: number, init?: JoinGrant): void;
  /** The init material that came with the lease of `epoch`, while this node holds it. */
  initGrant(epoch: number): JoinGrant | undefined;
  release(): void;
}

export interface RetryPolicy {
  /** Total attempts within one run, including the first. */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Only errors for which this returns true are retried; the rest fail at once. */
  retryable: (error: unknown) => boolean;
}

/** One bootstrap step, in the spirit of kubeadm's phase workflow: a plain value the runner walks. */
export interface Phase<Output = unknown> {
  name: string;
  summary: string;
  /** Phases that must be done (or skipped as not applicable) before this one runs. */
  needs: string[];
  /** Whether this phase applies to this node at all (for example, control-plane only). */
  appliesTo?: (ctx: PhaseContext) => boolean;
  /** Checks the host for the phase's effect, so that work done before the journal knew of it is not repeated. */
  isDone?: (ctx: PhaseContext) => Promise<boolean>;
  run: (ctx: PhaseContext) => Promise<Output>;
  retry?: RetryPolicy;
}
