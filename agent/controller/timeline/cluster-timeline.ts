import type { Timeline } from '../../protocol/api.ts';
import { byRegistration } from '../clusters/cluster-records.ts';
import { nodeState } from '../status/cluster-status.ts';
import type { ClusterState, NodeState, PhaseRun } from '../store/state.ts';

/**
 * A cluster's formation as the timeline shows it: nodes in formation order (the leader, the
 * other control-plane nodes in the order they began to join, then the workers), each with its
 * phase runs.
 */
export function clusterTimeline(cluster: ClusterState, now: number): Timeline {
  const leader = cluster.leader.holder;
  const nodes = Object.values(cluster.nodes).filter((node) => node.revokedAt === undefined);
  nodes.sort((a, b) => rank(a, leader) - rank(b, leader) || joinStart(a) - joinStart(b) || byRegistration(a, b));
  return {
    cluster: { id: cluster.id, name: cluster.name },
    now: new Date(now).toISOString(),
    leader,
    initializedAt: iso(cluster.leader.initializedAt),
    nodes: nodes.map((node) => ({
      name: node.name,
      role: node.role,
      pool: node.pool,
      state: nodeState(node),
      joinGrantedAt: node.granted === 'join' ? iso(node.joinTokenIssuedAt) : undefined,
      spans: (node.phaseRuns ?? []).map(span),
    })),
  };
}

function rank(node: NodeState, leader: string | undefined): number {
  if (node.name === leader) return 0;
  return node.role === 'master' ? 1 : 2;
}

/** When the node's first kubeadm join began; never for nodes that have not begun one. */
function joinStart(node: NodeState): number {
  return node.phaseRuns?.find((run) => run.phase === 'kube-join')?.startedAt ?? Number.MAX_SAFE_INTEGER;
}

function span(run: PhaseRun): Timeline['nodes'][number]['spans'][number] {
  return {
    phase: run.phase,
    attempt: run.attempt,
    startedAt: new Date(run.startedAt).toISOString(),
    endedAt: iso(run.endedAt),
    outcome: run.outcome,
    message: run.message,
  };
}

function iso(epochMs: number | undefined): string | undefined {
  return epochMs === undefined ? undefined : new Date(epochMs).toISOString();
}
