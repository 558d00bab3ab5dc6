import type { AgentConfig } from '../config/schema.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import type { PhaseOutputs } from '../journal/phase-outputs.ts';
import type { NodeFacts } from '../node/facts.ts';
import type { JoinGrant } from '../protocol/api.ts';
import type { NodeApi } from '../protocol/node-api.ts';

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
  /** Runs after a failed attempt that will be retried, before the wait: undoes what the attempt left behind. */
  beforeRetry?: (ctx: PhaseContext, error: unknown) => Promise<void>;
}

/** One bootstrap step, in the spirit of kubeadm's phase workflow: a plain value the runner walks. */
export interface Phase<Output = unknown> {
  name: string;
  summary: string;
  /** Phases that must be done (or skipped as not applicable) before this one runs. */
  needs: string[];
  /** Whether this phase applies to this node at all (for example, control-plane only). */
  appliesTo?: (ctx: PhaseContext) => boolean;
  /** The journal's note on a node appliesTo excludes; by default `not for a <role> node`. */
  skipNote?: (ctx: PhaseContext) => string;
  /** Checks the host for the phase's effect, so that work done before the journal knew of it is not repeated. */
  isDone?: (ctx: PhaseContext) => Promise<boolean>;
  run: (ctx: PhaseContext) => Promise<Output>;
  /**
   * For a phase done in an earlier run, before this run walks the list: takes up what the phase
   * keeps going across runs (the leader lease) and says whether its result still holds. false:
   * the runner forgets the phase, which then runs again.
   */
  resume?: (ctx: PhaseContext) => Promise<boolean>;
  retry?: RetryPolicy;
}

/** For the phases only the elected leader runs. */
export const LEADER_ONLY: Required<Pick<Phase, 'appliesTo' | 'skipNote'>> = {
  appliesTo: ({ config, outputs }) => config.role === 'master' && outputs.elect?.leader === true,
  skipNote: ({ config, outputs }) => `not for a ${config.role} node${outputs.elect?.leader === false ? ' that is not the leader' : ''}`,
};
