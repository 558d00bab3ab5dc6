import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { errorMessage, PkeError } from '../core/errors.ts';
import type { JoinGrant } from '../protocol/api.ts';
import { ControllerRequestError } from '../protocol/errors.ts';
import { renderJoinConfig } from '../kube/kubeadm-config.ts';
import { registeredNode } from '../journal/phase-outputs.ts';
import { forgetJoinStarted, joinDone, markJoinStarted, resetUnfinishedJoin } from '../kube/join-marker.ts';
import { failedInPreflight, isTransientKubeadmError, kubeadmJoin } from '../kube/kubeadm.ts';
import { KUBEADM_JOIN_CONFIG, KUBELET_KUBECONFIG } from '../kube/paths.ts';
import { LEADER_ONLY, type Phase, type PhaseContext } from './phase.ts';

export interface KubeJoinOutput {
  controlPlane: boolean;
}

export interface KubeJoinOptions {
  /** How long to keep asking the controller while it answers not-initialized or slot-busy. */
  grantWaitMs?: number;
  /** Seconds each join request may be held by the controller (long-poll). */
  grantPollSeconds?: number;
  /** kubeadm join runs within one bootstrap run, the first included. */
  attempts?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
}

const DEFAULTS: Required<KubeJoinOptions> = {
  // Control-plane joins are one at a time: the last of five may wait for four others.
  grantWaitMs: 30 * 60_000,
  grantPollSeconds: 30,
  attempts: 6,
  initialDelayMs: 2_000,
  maxDelayMs: 30_000,
};

/** A long-poll that came back quicker than this is not allowed to make the loop spin. */
const MIN_ASK_INTERVAL_MS = 1_000;

/**
 * `kubeadm join` for every node but the leader. Asks the controller for a grant (waiting while
 * the cluster is not initialized or, on control plane, another node holds the join slot), then joins;
 * transient kubeadm failures (etcd's one-learner limit, the API not answering) are retried
 * with capped backoff, each time with a fresh grant and after `kubeadm reset -f`, since a
 * half join leaves kubelet.conf and static pods that fail the next preflight.
 */
export function createKubeJoinPhase(options: KubeJoinOptions = {}): Phase<KubeJoinOutput> {
  const settings = { ...DEFAULTS, ...options };
  return {
    name: 'kube-join',
    summary: 'kubeadm join with a grant from the controller (control-plane nodes one at a time)',
    needs: ['register', 'elect', 'certs', 'host-prep'],
    appliesTo: (ctx) => !LEADER_ONLY.appliesTo(ctx),
    isDone: ({ host, config }) => joinDone(host, config.role === 'master'),
    retry: {
      attempts: settings.attempts,
      initialDelayMs: settings.initialDelayMs,
      maxDelayMs: settings.maxDelayMs,
      retryable: isTransientKubeadmError,
      beforeRetry: async ({ host, log, config }, error) => {
        log.warn('kube-join.retry', { error: errorMessage(error) });
        // Nothing to reset when kubeadm stopped in preflight: that removed the marker.
        await resetUnfinishedJoin(host, log, 'the join attempt failed', { controlPlane: config.role === 'master' });
      },
    },
    run: async (ctx) => {
      const { config, host, log } = ctx;
      const controlPlane = config.role === 'master';
      if (await joinDone(host, controlPlane)) {
        log.info('kube-join.already-done', { evidence: KUBELET_KUBECONFIG });
        return { controlPlane };
      }
      await resetUnfinishedJoin(host, log, 'an earlier kubeadm join on this node did not finish', { controlPlane });
      await joinOnce(ctx, settings);
      return { controlPlane };
    },
  };
}

export const kubeJoinPhase = createKubeJoinPhase();

/** What a join uses of a phase's context; `pke-agent restore --rejoin` has it outside the phase runner. */
export type JoinContext = Pick<PhaseContext, 'config' | 'host' | 'log' | 'outputs' | 'signal' | 'controller'>;

/**
 * The join again of a control-plane node that has been reset (`pke-agent restore --rejoin`), the
 * leader included: the phase's join and retries, outside the journal, whose kube-join says what
 * the first boot did.
 */
export async function joinAgain(ctx: JoinContext, options: KubeJoinOptions = {}): Promise<void> {
  const settings = { ...DEFAULTS, ...options };
  const controlPlane = ctx.config.role === 'master';
  await pRetry(() => joinOnce(ctx, settings), {
    retries: settings.attempts - 1,
    minTimeout: settings.initialDelayMs,
    maxTimeout: settings.maxDelayMs,
    factor: 2,
    randomize: true,
    signal: ctx.signal,
    shouldRetry: ({ error }) => isTransientKubeadmError(error),
    onFailedAttempt: async ({ error, retriesLeft }) => {
      if (retriesLeft === 0 || !isTransientKubeadmError(error)) return;
      ctx.log.warn('kube-join.retry', { error: errorMessage(error), retriesLeft });
      await resetUnfinishedJoin(ctx.host, ctx.log, 'the join attempt failed', { controlPlane });
    },
  });
}

async function joinOnce(ctx: JoinContext, settings: Required<KubeJoinOptions>): Promise<void> {
  const { config, host, log, outputs, signal } = ctx;
  const node = registeredNode(outputs, 'kube-join');
  const grant = await waitForGrant(ctx, settings);
  if (grant.mode !== 'join') throw new PkeError(`the controller answered with ${grant.mode} material to a node that is not the leader`);
  const discovery = { endpoint: grant.endpoint, token: grant.token, caCertHash: grant.caCertHash };
  await host.writeFile(KUBEADM_JOIN_CONFIG, renderJoinConfig({ config, node, discovery }), { mode: 0o600 });
  await markJoinStarted(host, grant.endpoint);
  try {
    await kubeadmJoin(host, KUBEADM_JOIN_CONFIG, log, signal);
  } catch (error) {
    if (failedInPreflight(error)) await forgetJoinStarted(host);
    throw signal.aborted ? signal.reason : error;
  }
  await forgetJoinStarted(host);
}

async function waitForGrant(ctx: JoinContext, settings: Required<KubeJoinOptions>): Promise<JoinGrant> {
  const deadline = Date.now() + settings.grantWaitMs;
  for (;;) {
    const asked = Date.now();
    try {
      return await ctx.controller.join({}, { waitSeconds: settings.grantPollSeconds });
    } catch (error) {
      if (!isJoinNotYet(error)) throw error;
      if (Date.now() >= deadline) {
        throw new PkeError(
          `no join grant after ${Math.round(settings.grantWaitMs / 1000)} s; the controller last said: ${errorMessage(error)}`,
          {
            cause: error,
          },
        );
      }
      ctx.log.info('kube-join.waiting', { reason: errorMessage(error) });
      const quick = MIN_ASK_INTERVAL_MS - (Date.now() - asked);
      if (quick > 0) await sleep(quick, undefined, { signal: ctx.signal });
    }
  }
}

/** The controller's "not yet" to a join request: the cluster is not initialized, or another node holds the join slot. */
function isJoinNotYet(error: unknown): boolean {
  return error instanceof ControllerRequestError && (error.code === 'not-initialized' || error.code === 'slot-busy');
}
