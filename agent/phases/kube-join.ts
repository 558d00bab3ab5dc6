import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { errorMessage, PkeError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { JoinGrant } from '../protocol/api.ts';
import { ControllerRequestError } from '../protocol/errors.ts';
import { renderJoinConfig } from '../kube/kubeadm-config.ts';
import { failedInPreflight, isTransientKubeadmError, kubeadmJoin, kubeadmReset } from '../kube/kubeadm.ts';
import { CONTROL_PLANE_MANIFESTS, JOIN_STARTED_MARKER, KUBEADM_JOIN_CONFIG, KUBELET_KUBECONFIG } from '../kube/paths.ts';
import type { Phase, PhaseContext } from './phase.ts';

export interface KubeJoinOutput {
  controlPlane: boolean;
  /** kubeadm join runs it took, the successful one included. */
  attempts: number;
}

export interface KubeJoinOptions {
  /** How long to keep asking the controller while it answers not-initialized or slot-busy. */
  grantWaitMs?: number;
  /** Seconds each join request may be held by the controller (long-poll). */
  grantPollSeconds?: number;
  /** kubeadm join runs within one phase run, the first included. */
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
    appliesTo: ({ config, outputs }) => !(config.role === 'master' && outputs.elect?.leader === true),
    isDone: ({ host, config }) => joinDone(host, config.role === 'master'),
    run: async (ctx) => {
      const { config, host, log } = ctx;
      const controlPlane = config.role === 'master';
      if (await joinDone(host, controlPlane)) {
        log.info('kube-join.already-done', { evidence: KUBELET_KUBECONFIG });
        return { controlPlane, attempts: 0 };
      }
      if (await host.exists(JOIN_STARTED_MARKER)) {
        log.warn('kube-join.reset', { reason: 'an earlier kubeadm join on this node did not finish', marker: JOIN_STARTED_MARKER });
        await resetJoin(host, ctx);
      }

      let attempts = 0;
      await pRetry(
        async () => {
          attempts += 1;
          await joinOnce(ctx, settings);
        },
        {
          retries: settings.attempts - 1,
          factor: 2,
          minTimeout: settings.initialDelayMs,
          maxTimeout: settings.maxDelayMs,
          signal: ctx.signal,
          shouldRetry: ({ error }) => isTransientKubeadmError(error),
          onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
            if (!isTransientKubeadmError(error) || retriesLeft === 0) return;
            log.warn('kube-join.retry', { attempt: attemptNumber, retriesLeft, error: errorMessage(error) });
            // The marker is gone when kubeadm stopped in preflight, which changes nothing.
            if (await host.exists(JOIN_STARTED_MARKER)) await resetJoin(host, ctx);
          },
        },
      );
      return { controlPlane, attempts };
    },
  };
}

export const kubeJoinPhase = createKubeJoinPhase();

async function joinOnce(ctx: PhaseContext, settings: Required<KubeJoinOptions>): Promise<void> {
  const { config, host, log, outputs } = ctx;
  const node = outputs.register;
  if (!node) throw new PkeError('kube-join needs the register output');
  const grant = await waitForGrant(ctx, settings);
  if (grant.mode !== 'join') throw new PkeError(`the controller answered with ${grant.mode} material to a node that is not the leader`);
  const discovery = { endpoint: grant.endpoint, token: grant.token, caCertHash: grant.caCertHash };
  await host.writeFile(KUBEADM_JOIN_CONFIG, renderJoinConfig({ config, node, discovery }), { mode: 0o600 });
  await host.writeFile(JOIN_STARTED_MARKER, `${JSON.stringify({ startedAt: new Date().toISOString(), endpoint: grant.endpoint })}\n`);
  try {
    await kubeadmJoin(host, KUBEADM_JOIN_CONFIG, log);
  } catch (error) {
    if (failedInPreflight(error)) await host.remove(JOIN_STARTED_MARKER);
    throw error;
  }
  await host.remove(JOIN_STARTED_MARKER);
}

async function waitForGrant(ctx: PhaseContext, settings: Required<KubeJoinOptions>): Promise<JoinGrant> {
  const deadline = Date.now() + settings.grantWaitMs;
  for (;;) {
    const asked = Date.now();
    try {
      return await ctx.controller.join({}, { waitSeconds: settings.grantPollSeconds });
    } catch (error) {
      if (!isJoinNotYet(error)) throw error;
      if (Date.now() >= deadline) {
        throw new PkeError(`no join grant after ${Math.round(settings.grantWaitMs / 1000)} s; the controller last said: ${errorMessage(error)}`, {
          cause: error,
        });
      }
      ctx.log.info('kube-join.waiting', { reason: errorMessage(error) });
      const quick = MIN_ASK_INTERVAL_MS - (Date.now() - asked);
      if (quick > 0) await sleep(quick, undefined, { signal: ctx.signal });
    }
  }
}

/** The controller's "not yet" to a join request: the cluster is not initialized, or another node holds the join slot. */
export function isJoinNotYet(error: unknown): boolean {
  return error instanceof ControllerRequestError && (error.code === 'not-initialized' || error.code === 'slot-busy');
}

async function resetJoin(host: Host, { log, config }: PhaseContext): Promise<void> {
  await kubeadmReset(host, log, { keepSharedPki: config.role === 'master' });
  await host.remove(JOIN_STARTED_MARKER);
}

/** kubelet.conf (and on control plane the static pods), with no join of ours left unfinished. */
async function joinDone(host: Host, controlPlane: boolean): Promise<boolean> {
  if (await host.exists(JOIN_STARTED_MARKER)) return false;
  const files = controlPlane ? [KUBELET_KUBECONFIG, ...CONTROL_PLANE_MANIFESTS] : [KUBELET_KUBECONFIG];
  for (const file of files) if (!(await host.exists(file))) return false;
  return true;
}
