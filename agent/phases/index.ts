import { addonsPhase } from './addons.ts';
import { certsPhase } from './certs.ts';
import { electPhase } from './elect.ts';
import { hostPrepPhase } from './host-prep.ts';
import { kubeInitPhase } from './kube-init.ts';
import { kubeJoinPhase } from './kube-join.ts';
import type { Phase } from './phase.ts';
import { preflightPhase } from './preflight.ts';
import { registerPhase } from './register.ts';
import { signalJoinedPhase } from './signal-joined.ts';
import { signalReadyPhase } from './signal-ready.ts';
import { vipPhase } from './vip.ts';
import { waitReadyPhase } from './wait-ready.ts';

/**
 * The bootstrap, in order. `bootstrap --phase`, the runner and `status` all read this one list.
 * host-prep and certs come before elect: a control-plane node that loses the election waits
 * there until the leader has initialized the cluster, and is then ready to join at once.
 * signal-joined comes straight after init or join: it opens the joins (leader) or frees the
 * join slot (control plane) while this node goes on with its VIP, add-ons and readiness.
 */
export const PHASES: readonly Phase[] = [
  preflightPhase,
  registerPhase,
  hostPrepPhase,
  certsPhase,
  electPhase,
  kubeInitPhase,
  kubeJoinPhase,
  signalJoinedPhase,
  vipPhase,
  addonsPhase,
  waitReadyPhase,
  signalReadyPhase,
] as Phase[];
