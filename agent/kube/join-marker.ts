import type { Logger } from '../core/log.ts';
import { JOIN_STARTED_MARKER } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { kubeadmReset } from './kubeadm.ts';
import { CONTROL_PLANE_MANIFESTS, KUBELET_KUBECONFIG } from './paths.ts';

/** The marker of this node's own `kubeadm join`, there while one runs or after one failed. Only this module reads or writes it. */

export async function markJoinStarted(host: Host, endpoint: string): Promise<void> {
  await host.writeFile(JOIN_STARTED_MARKER, `${JSON.stringify({ startedAt: new Date().toISOString(), endpoint })}\n`);
}

/** The join finished, or stopped in kubeadm's preflight, which changes nothing. */
export async function forgetJoinStarted(host: Host): Promise<void> {
  await host.remove(JOIN_STARTED_MARKER);
}

/** kubelet.conf (and on control plane the static pods), with no join of ours left unfinished. */
export async function joinDone(host: Host, controlPlane: boolean): Promise<boolean> {
  if (await host.exists(JOIN_STARTED_MARKER)) return false;
  const files = controlPlane ? [KUBELET_KUBECONFIG, ...CONTROL_PLANE_MANIFESTS] : [KUBELET_KUBECONFIG];
  for (const file of files) if (!(await host.exists(file))) return false;
  return true;
}

/**
 * Resets a join this node began and never finished (its marker is there): a half join leaves
 * kubelet.conf and static pods that fail the next preflight. Control-plane nodes keep the
 * shared CAs. Does nothing when there is no marker.
 */
export async function resetUnfinishedJoin(host: Host, log: Logger, reason: string, options: { controlPlane: boolean }): Promise<void> {
  if (!(await host.exists(JOIN_STARTED_MARKER))) return;
  log.warn('kube-join.reset', { reason, marker: JOIN_STARTED_MARKER });
  await kubeadmReset(host, log, { keepSharedPki: options.controlPlane });
  await host.remove(JOIN_STARTED_MARKER);
}
