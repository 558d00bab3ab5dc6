import type { Logger } from '../core/log.ts';
import { INIT_DONE_MARKER, INIT_STARTED_MARKER } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { kubeadmReset } from './kubeadm.ts';
import { ADMIN_KUBECONFIG, CONTROL_PLANE_MANIFESTS } from './paths.ts';

/**
 * The markers of this node's own `kubeadm init`: started when it begins, done when it
 * succeeded. Only this module reads or writes them.
 */

export async function markInitStarted(host: Host, epoch: number): Promise<void> {
  await host.writeFile(INIT_STARTED_MARKER, `${JSON.stringify({ startedAt: new Date().toISOString(), epoch })}\n`);
}

export async function markInitDone(host: Host, epoch: number): Promise<void> {
  await host.writeFile(INIT_DONE_MARKER, `${JSON.stringify({ doneAt: new Date().toISOString(), epoch })}\n`);
  await host.remove(INIT_STARTED_MARKER);
}

/** An init that stopped in kubeadm's preflight changed nothing: there is nothing to reset. */
export async function forgetInitStarted(host: Host): Promise<void> {
  await host.remove(INIT_STARTED_MARKER);
}

/**
 * Done when this agent recorded it, or when kubeadm's results are there and no init of ours is
 * unfinished (an init that failed halfway leaves admin.conf and manifests behind). Returns the
 * file that shows it.
 */
export async function initDoneEvidence(host: Host): Promise<string | undefined> {
  if (await host.exists(INIT_DONE_MARKER)) return INIT_DONE_MARKER;
  if (await host.exists(INIT_STARTED_MARKER)) return undefined;
  for (const file of [ADMIN_KUBECONFIG, ...CONTROL_PLANE_MANIFESTS]) if (!(await host.exists(file))) return undefined;
  return ADMIN_KUBECONFIG;
}

/**
 * Resets an init this node began and never finished (its init-started marker is there), keeping
 * the shared CAs, and removes the marker: what that init left behind would fail the next init
 * or join on this node. Does nothing when there is no marker.
 */
export async function resetUnfinishedInit(host: Host, log: Logger, reason: string): Promise<void> {
  if (!(await host.exists(INIT_STARTED_MARKER))) return;
  log.warn('kube-init.reset', { reason, marker: INIT_STARTED_MARKER });
  await kubeadmReset(host, log, { keepSharedPki: true });
  await host.remove(INIT_STARTED_MARKER);
}
