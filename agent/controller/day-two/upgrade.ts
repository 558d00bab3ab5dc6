import type { UpgradeGrant, UpgradeView } from '../../protocol/upgrade.ts';
import { byRegistration } from '../clusters/cluster-records.ts';
import { leaseHolder } from '../formation/lease.ts';
import type { ClusterState, NodeState } from '../store/state.ts';

/**
 * A rolling Kubernetes upgrade of one cluster, as pure functions over its state. The order is
 * fixed when the upgrade starts: control-plane nodes first (the leader first: it runs `kubeadm
 * upgrade apply`; the others `kubeadm upgrade node`), then the workers, each list in
 * registration order. One node at a time holds the upgrade slot; it has no expiry, so the next
 * node starts only once its holder reports itself Ready on the new version. A failed step of the
 * holder stops the rollout there until that node's rerun gets past it.
 */

export type Version = { major: number; minor: number; patch: number };

export function parseVersion(version: string): Version {
  const [major = 0, minor = 0, patch = 0] = version.replace(/^v/, '').split('.').map(Number);
  return { major, minor, patch };
}

/**
 * Why an upgrade from `from` to `to` is refused, or undefined. Kubernetes' version skew policy:
 * the control plane moves one minor version at a time (kubeadm refuses to skip one), and no
 * kubelet may be newer than the API server; a patch release of the same minor is fine.
 */
export function upgradeSkewRefusal(from: string, to: string): string | undefined {
  const a = parseVersion(from);
  const b = parseVersion(to);
  const next = `${a.major}.${a.minor + 1}.x`;
  if (b.major !== a.major || b.minor < a.minor || (b.minor === a.minor && b.patch <= a.patch))
    return `${to} is not newer than the cluster's ${from}; downgrades are not supported`;
  if (b.minor > a.minor + 1)
    return `${to} skips a minor version: Kubernetes is upgraded one minor version at a time (the version skew policy; kubeadm refuses a skip), and the cluster runs ${from}, so upgrade to ${next} first`;
  return undefined;
}

/** The nodes an upgrade started now would take, in their order. */
export function upgradeOrder(cluster: ClusterState, now: number): NodeState[] {
  const members = Object.values(cluster.nodes).filter((n) => n.joinedAt !== undefined && n.revokedAt === undefined);
  const leader = leaseHolder(cluster, now);
  const rank = (n: NodeState) => (n.role === 'master' ? (n.name === leader ? 0 : 1) : 2);
  return members.sort((a, b) => rank(a) - rank(b) || byRegistration(a, b));
}

/** The upgrade in progress (started, not finished), if any. */
export function activeUpgrade(cluster: ClusterState): NonNullable<ClusterState['upgrade']> | undefined {
  return cluster.upgrade && cluster.upgrade.finishedAt === undefined ? cluster.upgrade : undefined;
}

/** The node whose turn comes next: the first in order not upgraded yet (a revoked node is passed over). */
export function nextInLine(cluster: ClusterState): string | undefined {
  const upgrade = activeUpgrade(cluster);
  if (!upgrade) return undefined;
  return upgrade.order.find((name) => {
    const node = cluster.nodes[name];
    return node !== undefined && node.revokedAt === undefined && node.upgrade?.upgradedAt === undefined;
  });
}

export function grantOf(cluster: ClusterState, node: string): UpgradeGrant {
  const upgrade = cluster.upgrade!;
  return {
    to: upgrade.to,
    mode: upgrade.order[0] === node ? 'apply' : 'node',
    grantedAt: new Date(cluster.nodes[node]?.upgrade?.grantedAt ?? Date.now()).toISOString(),
  };
}

/** The new node taking `name`'s place in the rolling replacement under way, if any. */
export function replacementOf(cluster: ClusterState, name: string): string | undefined {
  const upgrade = activeUpgrade(cluster);
  const mine = cluster.nodes[name]?.upgrade;
  return upgrade?.strategy === 'replace' && mine?.to === upgrade.to ? mine.replacement : undefined;
}

/**
 * Where the rollout stopped. In place: the slot holder's last step failed. Replacing: the new
 * node's bootstrap failed, the old node's removal failed, or the controller cannot go on (why).
 */
export function stoppedAt(cluster: ClusterState): UpgradeView['stopped'] {
  const upgrade = activeUpgrade(cluster);
  const holder = upgrade?.holder;
  const node = holder === undefined ? undefined : cluster.nodes[holder];
  if (upgrade?.strategy !== 'replace') {
    if (node?.phaseState !== 'failed' || !node.phase?.startsWith('upgrade-')) return undefined;
    return { node: node.name, phase: node.phase, error: node.lastError };
  }
  const removal = node?.removal;
  if (node && removal?.state === 'failed') {
    const step = removal.step ?? 'removal';
    return { node: node.name, phase: `remove/${step}`, error: removal.steps[step]?.note };
  }
  const replacement = node === undefined ? undefined : cluster.nodes[replacementOf(cluster, node.name) ?? ''];
  if (replacement?.vmError !== undefined) return { node: replacement.name, phase: 'provision', error: replacement.vmError };
  if (replacement?.phaseState === 'failed' && replacement.phase !== undefined)
    return { node: replacement.name, phase: replacement.phase, error: replacement.lastError };
  if (upgrade.error !== undefined) return { node: holder ?? '-', phase: 'replace', error: upgrade.error };
  return undefined;
}

/** What the holder of a rolling replacement is at: its replacement's bootstrap, then its own removal. */
function replacingPhase(cluster: ClusterState, node: NodeState | undefined): string | undefined {
  if (!node) return undefined;
  if (node.removal !== undefined) return `remove/${node.removal.step ?? node.removal.state}`;
  const name = replacementOf(cluster, node.name);
  const replacement = name === undefined ? undefined : cluster.nodes[name];
  if (!replacement) return name === undefined ? undefined : `${name}: cloning`;
  return `${replacement.name}: ${replacement.readyAt !== undefined ? 'ready' : (replacement.phase ?? (replacement.vm ? 'booting' : 'cloning'))}`;
}

/** Every node's upgrade has been reported (or the node was revoked meanwhile). */
export function allUpgraded(cluster: ClusterState): boolean {
  return nextInLine(cluster) === undefined;
}

export function upgradeView(cluster: ClusterState): UpgradeView | undefined {
  const upgrade = cluster.upgrade;
  if (!upgrade) return undefined;
  const strategy = upgrade.strategy ?? 'in-place';
  const stopped = stoppedAt(cluster);
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  return {
    from: upgrade.from,
    to: upgrade.to,
    strategy,
    ...(upgrade.template === undefined ? {} : { template: upgrade.template }),
    startedAt: new Date(upgrade.startedAt).toISOString(),
    finishedAt: iso(upgrade.finishedAt),
    holder: upgrade.holder,
    stopped,
    nodes: upgrade.order.map((name, index) => {
      const node = cluster.nodes[name];
      const mine = node?.upgrade?.to === upgrade.to ? node.upgrade : undefined;
      const failed = stopped !== undefined && upgrade.holder === name;
      const state = mine?.upgradedAt !== undefined ? 'upgraded' : failed ? 'failed' : upgrade.holder === name ? 'upgrading' : 'waiting';
      const busy = state === 'upgrading' || state === 'failed';
      return {
        name,
        role: node?.role ?? 'worker',
        mode: strategy === 'replace' ? 'replace' : index === 0 ? 'apply' : 'node',
        ...(mine?.replacement === undefined ? {} : { replacement: mine.replacement }),
        state,
        phase: busy ? (strategy === 'replace' ? replacingPhase(cluster, node) : node?.phase) : undefined,
        startedAt: iso(mine?.grantedAt),
        upgradedAt: iso(mine?.upgradedAt),
        seconds: mine?.grantedAt !== undefined && mine.upgradedAt !== undefined ? (mine.upgradedAt - mine.grantedAt) / 1000 : undefined,
      };
    }),
  };
}
