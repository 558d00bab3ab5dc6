/**
 * etcd keeps working while a majority of its voting members is healthy: a cluster of N voting
 * members needs floor(N/2) + 1 of them (its quorum). Learners do not vote. Removing a member is
 * itself a change etcd must commit, so it needs the quorum of the cluster as it is; and the
 * cluster left behind must still have its own quorum of healthy members. Cluster API's KCP
 * refuses a scale-down on the same rule.
 */

export interface QuorumMember {
  name: string;
  learner: boolean;
  healthy: boolean;
}

export function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** Why removing `leaving` would break etcd, in one line naming the rule and the numbers; undefined when it is safe. */
export function quorumRefusal(members: QuorumMember[], leaving: string): string | undefined {
  const target = members.find((m) => m.name === leaving);
  if (target?.learner) return undefined;
  const voters = members.filter((m) => !m.learner);
  const healthy = voters.filter((m) => m.healthy);
  const rule = 'etcd needs a majority of its voting members healthy: quorum of N = floor(N/2)+1';
  if (target && voters.length === 1) return `${leaving} is the last etcd member; removing it would end the cluster's etcd`;
  if (healthy.length < quorumOf(voters.length)) {
    return `etcd has ${healthy.length} healthy of ${voters.length} voting members (${names(healthy)}), below its quorum of ${quorumOf(voters.length)}: it cannot commit a member removal (${rule})`;
  }
  if (!target) return undefined;
  const remaining = voters.filter((m) => m.name !== leaving);
  const remainingHealthy = remaining.filter((m) => m.healthy);
  if (remainingHealthy.length < quorumOf(remaining.length)) {
    return `removing ${leaving} would leave ${remaining.length} etcd members with ${remainingHealthy.length} healthy (${names(remainingHealthy)}), below their quorum of ${quorumOf(remaining.length)} (${rule})`;
  }
  return undefined;
}

function names(members: QuorumMember[]): string {
  return members.length === 0 ? 'none' : members.map((m) => m.name).join(', ');
}
