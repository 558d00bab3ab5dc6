import type { RenewalClaim } from '../../protocol/api.ts';
import { conflict } from '../http/problem.ts';
import type { ClusterState } from '../store/state.ts';
import type { Touch } from '../store/state-store.ts';

/**
 * The one certificate renewal claim of a cluster: `pke-agent certs renew` restarts a node's etcd
 * and API server, and the control-plane nodes of a cluster all come due on the same day, so they
 * renew one after another. A claim is held until its holder reports the finished renewal (a
 * certificates report with `renewedAt`) or it expires; then the next node that asks takes it.
 */

/** How long a node has to renew and restart its static pods; after that the claim goes to the next node that asks. */
export const RENEWAL_CLAIM_TTL_MS = 15 * 60_000;

type RenewalClaimState = NonNullable<ClusterState['certificateRenewal']>;

/** The live claim, or undefined when no node holds it. */
export function liveRenewalClaim(cluster: ClusterState, now: number): RenewalClaimState | undefined {
  const claim = cluster.certificateRenewal;
  return claim !== undefined && now < claim.expiresAt ? claim : undefined;
}

/**
 * Gives the claim to `nodeName` if no node holds it, or answers it again to its holder (a rerun
 * keeps the original expiry); otherwise names the holder. Only a joined control-plane member of
 * the cluster may ask: the controller knows no other node's certificates.
 */
export function claimRenewal(cluster: ClusterState, nodeName: string, now: number, touch: Touch): RenewalClaim {
  const node = cluster.nodes[nodeName];
  if (node?.role !== 'master' || node.joinedAt === undefined || node.revokedAt !== undefined) {
    throw conflict(
      `node ${nodeName} asks to renew its certificates, but the controller knows it as no joined control-plane node of ${cluster.name}`,
    );
  }
  const live = liveRenewalClaim(cluster, now);
  if (live !== undefined && live.node !== nodeName) {
    return { granted: false, holder: live.node, expiresAt: new Date(live.expiresAt).toISOString() };
  }
  if (live !== undefined) return { granted: true, expiresAt: new Date(live.expiresAt).toISOString() };
  cluster.certificateRenewal = { node: nodeName, grantedAt: now, expiresAt: now + RENEWAL_CLAIM_TTL_MS };
  touch.cluster(cluster.id);
  return { granted: true, expiresAt: new Date(now + RENEWAL_CLAIM_TTL_MS).toISOString() };
}

/** Ends the claim if `nodeName` holds it (its renewal is done); says whether it did. */
export function releaseRenewalClaim(cluster: ClusterState, nodeName: string, touch: Touch): boolean {
  if (cluster.certificateRenewal?.node !== nodeName) return false;
  cluster.certificateRenewal = undefined;
  touch.cluster(cluster.id);
  return true;
}
