import { setTimeout as sleep } from 'node:timers/promises';
import { PkeError, errorMessage } from '../../core/errors.ts';
import { nameRecord } from '../../core/records.ts';
import { VIP_RELEASE_PHASE, type NodeStatus, type RemovalRequest } from '../../protocol/api.ts';
import { deleteJoinToken, revokeNode } from '../auth/revoke-node.ts';
import { ApiProblem, conflict, notFound } from '../http/problem.ts';
import type { ClusterApi } from '../kubernetes/cluster-api.ts';
import type { ClusterEtcd, EtcdMember } from '../kubernetes/cluster-etcd.ts';
import { drainNode } from '../kubernetes/drain.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState, NodeRemoval, NodeState } from '../store/state.ts';
import { EtcdAccess, type EtcdEndpointOf } from './etcd-access.ts';
import { quorumRefusal } from './etcd-quorum.ts';

/**
 * `controller node remove`: takes a node out of its cluster, one journaled step at a time (in
 * the node's record of the state), so that a controller restart resumes it and a rerun after a
 * failure starts at the step that failed. Every step is logged and shown by `controller status`.
 *
 * Workers: drain (cordon, evictions within the disruption budgets), delete the Node, revoke the
 * node's tokens, destroy its VM where the controller made it. Control-plane nodes besides: the
 * etcd quorum rule is checked before anything is done (and again right before the member goes),
 * the node hands the VIP over first (its own `vip sync` sees it `leaving` in the control-plane
 * view, stops keepalived, whose priority-0 advert makes a peer take the VIP at once, and reports
 * `vip-release`), etcd leadership moves off it, its member is removed, and the remaining nodes'
 * keepalived peers follow the view without it (their `vip sync` timer fetches it). A dead
 * control-plane node (its etcd member does not answer) is removed from the survivors alike,
 * without drain or hand-over.
 */

export type RemovalStepName =
  | 'quorum'
  | 'drain'
  | 'release-vip'
  | 'etcd-leader'
  | 'etcd-member'
  | 'delete-node'
  | 'revoke'
  | 'destroy-vm'
  | 'peers';

/** In this order. */
const STEPS: RemovalStepName[] = [
  'quorum',
  'drain',
  'release-vip',
  'etcd-leader',
  'etcd-member',
  'delete-node',
  'revoke',
  'destroy-vm',
  'peers',
];

export interface RemovalOptions {
  /** Where the controller reaches a control-plane node's etcd (default `https://IP:2379`). */
  etcdEndpoint?: EtcdEndpointOf;
  /** How long the leaving node has to report the VIP released (its vip sync timer runs every 30 s). */
  vipReleaseTimeoutMs?: number;
  /** How long the remaining control-plane nodes have to fetch the view without the node. */
  peersTimeoutMs?: number;
  /** Between two looks at what a step waits for. */
  pollMs?: number;
}

const DEFAULTS = { vipReleaseTimeoutMs: 120_000, peersTimeoutMs: 90_000, pollMs: 500 };
const UNHEALTHY_RETRY_MS = 60_000;

/** A step's answer: done with a note, or skipped with why. */
type StepOutcome = { skipped: string } | { note: string };

class RemovalRefused extends PkeError {}

export class NodeRemovals {
  private readonly etcdAccess: EtcdAccess;
  private readonly options: typeof DEFAULTS;
  /** Removals running in this process, by cluster (one at a time per cluster). */
  private readonly running = new Map<string, { node: string; done: Promise<void> }>();
  /** When each control-plane node last fetched the control-plane view (what its vip sync applies), by cluster/node. */
  private readonly viewFetches = new Map<string, number>();
  private readonly stopping = new AbortController();
  private readonly runtime: ControllerRuntime;

  constructor(runtime: ControllerRuntime, options: RemovalOptions = {}) {
    this.runtime = runtime;
    this.etcdAccess = new EtcdAccess(options.etcdEndpoint);
    this.options = { ...DEFAULTS, ...options };
  }

  /** The control-plane route calls this on every fetch by a node. */
  viewFetched(cluster: string, node: string): void {
    this.viewFetches.set(`${cluster}/${node}`, Date.now());
  }

  /** Whether the view shows the node as leaving: from its VIP hand-over on. */
  static isLeaving(node: NodeState): boolean {
    return node.removal !== undefined && node.removal.state !== 'done' && node.removal.steps['release-vip'] !== undefined;
  }

  /**
   * Starts removing `request.node`, or resumes its failed removal, and answers its status. A
   * control-plane node is refused (409) before anything is done when etcd would lose quorum.
   */
  async start(cluster: ClusterState, request: Required<RemovalRequest>): Promise<NodeState> {
    const node = cluster.nodes[request.node];
    if (!node || (node.revokedAt !== undefined && node.removedAt === undefined))
      throw notFound(`cluster ${cluster.id} has no node ${request.node}`);
    if (node.removedAt !== undefined) return node;
    const busy = this.running.get(cluster.id);
    if (busy && busy.node !== node.name)
      throw conflict(`node ${busy.node} of cluster ${cluster.id} is being removed; one removal at a time`);
    if (busy) return node;
    if (node.role === 'master' && node.removal?.steps.quorum?.state !== 'done') {
      await this.quorumCheck(cluster, node).catch((error: unknown) => {
        if (error instanceof RemovalRefused) throw conflict(`refused: ${error.message}`);
        throw new ApiProblem(503, 'cluster-api-unavailable', `cannot check etcd quorum of cluster ${cluster.id}: ${errorMessage(error)}`);
      });
    }
    this.runtime.store.mutate((_, touch) => {
      const removal: NodeRemoval = node.removal ?? {
        requestedAt: Date.now(),
        force: request.force,
        timeoutSeconds: request.timeoutSeconds,
        state: 'running',
        steps: nameRecord(),
      };
      removal.force = request.force;
      removal.timeoutSeconds = request.timeoutSeconds;
      removal.state = 'running';
      // A rerun starts again at the step that failed.
      for (const [name, step] of Object.entries(removal.steps))
        if (step.state === 'failed' || step.state === 'running') delete removal.steps[name];
      node.removal = removal;
      touch.node(cluster.id, node.name);
    });
    this.runtime.log.info('node.remove.started', { cluster: cluster.id, node: node.name, role: node.role, force: request.force });
    this.launch(cluster, node);
    return node;
  }

  /** Resumes the removals a previous run of the controller left running. */
  resumeAll(): void {
    for (const cluster of Object.values(this.runtime.store.state.clusters)) {
      for (const node of Object.values(cluster.nodes)) {
        if (node.removal?.state === 'running' && !this.running.has(cluster.id)) {
          this.runtime.log.info('node.remove.resumed', { cluster: cluster.id, node: node.name, step: node.removal.step });
          this.launch(cluster, node);
        }
      }
    }
  }

  /** Stops the running removals where they are (they resume at the next start). */
  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private launch(cluster: ClusterState, node: NodeState): void {
    const done = this.run(cluster, node).finally(() => this.running.delete(cluster.id));
    this.running.set(cluster.id, { node: node.name, done });
  }

  private async run(cluster: ClusterState, node: NodeState): Promise<void> {
    const removal = node.removal;
    if (!removal) return;
    let etcd: ClusterEtcd | undefined;
    const context: StepContext = {
      cluster,
      node,
      removal,
      signal: this.stopping.signal,
      api: async () => (cluster.leader.initialized ? this.runtime.clusterApi(cluster.id) : undefined),
      etcd: async () => {
        const pki = this.runtime.pki.get(cluster.id);
        if (!pki) throw new Error(`the PKI of cluster ${cluster.id} is not loaded`);
        etcd ??= await this.etcdAccess.connect(cluster, pki);
        return etcd;
      },
    };
    try {
      for (const step of STEPS) {
        if (this.stopping.signal.aborted) return;
        const previous = removal.steps[step];
        if (previous && (previous.state === 'done' || previous.state === 'skipped')) continue;
        this.record(cluster, node, step, 'running');
        let outcome: StepOutcome;
        try {
          outcome = await this.runStep(step, context);
        } catch (error) {
          if (this.stopping.signal.aborted) return;
          this.record(cluster, node, step, 'failed', errorMessage(error));
          this.runtime.log.warn('node.remove.failed', { cluster: cluster.id, node: node.name, step, error: errorMessage(error) });
          return;
        }
        if ('skipped' in outcome) this.record(cluster, node, step, 'skipped', outcome.skipped);
        else this.record(cluster, node, step, 'done', outcome.note);
      }
      this.runtime.store.mutate((_, touch) => {
        removal.state = 'done';
        removal.step = undefined;
        node.removedAt = Date.now();
        touch.node(cluster.id, node.name);
      });
      this.runtime.log.info('node.remove.done', { cluster: cluster.id, node: node.name });
      this.runtime.changed(cluster);
    } finally {
      await etcd?.close();
    }
  }

  private record(
    cluster: ClusterState,
    node: NodeState,
    step: RemovalStepName,
    state: 'running' | 'done' | 'skipped' | 'failed',
    note?: string,
  ) {
    const removal = node.removal;
    if (!removal) return;
    this.runtime.store.mutate((_, touch) => {
      removal.steps[step] = { state, at: Date.now(), note };
      removal.step = step;
      if (state === 'failed') removal.state = 'failed';
      touch.node(cluster.id, node.name);
    });
    if (state !== 'running') this.runtime.log.info('node.remove.step', { cluster: cluster.id, node: node.name, step, state, note });
    // The control-plane view changes with `release-vip` (the node is leaving) and `revoke` (it is gone).
    if (step === 'release-vip' || step === 'revoke') this.runtime.changed(cluster);
  }

  private runStep(step: RemovalStepName, c: StepContext): Promise<StepOutcome> {
    const master = c.node.role === 'master';
    const initialized = c.cluster.leader.initialized;
    switch (step) {
      case 'quorum':
        if (!master) return skip('a worker has no etcd member');
        return this.quorumCheck(c.cluster, c.node).then((note) => ({ note }));
      case 'drain':
        return this.drain(c);
      case 'release-vip':
        if (!master) return skip('workers hold no VIP');
        if (c.removal.dead) return skip('the node is dead: its keepalived went with it');
        if (!initialized || c.node.registration === undefined) return skip('the node never ran keepalived');
        return this.releaseVip(c);
      case 'etcd-leader':
        if (!master || !initialized) return skip('no etcd member');
        return this.moveEtcdLeader(c);
      case 'etcd-member':
        if (!master || !initialized) return skip('no etcd member');
        return this.removeEtcdMember(c);
      case 'delete-node':
        return this.deleteNode(c);
      case 'revoke':
        return this.revoke(c);
      case 'destroy-vm':
        return this.destroyVm(c);
      case 'peers':
        if (!master) return skip('workers are no keepalived peers');
        return this.awaitPeers(c);
    }
  }

  /** The etcd quorum rule; marks the removal `dead` when the node's member does not answer. Throws RemovalRefused. */
  private async quorumCheck(cluster: ClusterState, node: NodeState): Promise<string> {
    if (!cluster.leader.initialized) return 'the cluster was never initialized: no etcd yet';
    const pki = this.runtime.pki.get(cluster.id);
    if (!pki) throw new Error(`the PKI of cluster ${cluster.id} is not loaded`);
    const etcd = await this.etcdAccess.connect(cluster, pki);
    try {
      const health = await memberHealth(etcd);
      const refusal = quorumRefusal(health, node.name);
      if (refusal) throw new RemovalRefused(refusal);
      // Asked only of an etcd with quorum: reading the alarms goes through its raft log.
      const alarms = await etcd.alarms();
      if (alarms.length > 0) throw new RemovalRefused(`etcd has active alarms (${alarms.join(', ')}); clear them first`);
      const member = health.find((m) => m.name === node.name);
      const dead = member !== undefined && !member.healthy;
      if (node.removal && dead !== (node.removal.dead ?? false)) {
        const removal = node.removal;
        this.runtime.store.mutate((_, touch) => {
          removal.dead = dead;
          touch.node(cluster.id, node.name);
        });
      }
      const healthy = health.filter((m) => m.healthy).length;
      return member === undefined
        ? `no etcd member ${node.name}; ${healthy} of ${health.length} members healthy`
        : `${healthy} of ${health.length} etcd members healthy${dead ? `; ${node.name} does not answer: removed as dead` : ''}`;
    } finally {
      await etcd.close();
    }
  }

  private async drain(c: StepContext): Promise<StepOutcome> {
    if (c.removal.dead) return { skipped: 'the node is dead: its pods go with its Node (the pod garbage collector deletes them)' };
    const api = await c.api();
    if (!api) return { skipped: "the cluster's API is not known (never initialized)" };
    const result = await drainNode(api, c.node.name, {
      force: c.removal.force,
      timeoutMs: c.removal.timeoutSeconds * 1000,
      signal: c.signal,
      onEvent: ({ event, ...fields }) =>
        this.runtime.log.info(`node.drain.${event}`, { cluster: c.cluster.id, ...fields, node: c.node.name }),
    });
    if (!result.nodeFound) return { skipped: 'no such Node in the cluster' };
    return {
      note: `evicted ${result.evicted.length}, deleted ${result.deleted.length}, left ${result.skipped.length} (DaemonSet and mirror pods)`,
    };
  }

  /** Waits for the leaving node's `vip-release` report (its vip sync saw it leaving and stopped keepalived). */
  private async releaseVip(c: StepContext): Promise<StepOutcome> {
    const deadline = Date.now() + this.options.vipReleaseTimeoutMs;
    while (!(c.node.phase === VIP_RELEASE_PHASE && c.node.phaseState === 'done')) {
      if (Date.now() >= deadline) {
        throw new Error(
          `${c.node.name} did not report releasing the VIP within ${this.options.vipReleaseTimeoutMs / 1000} s (its pke-vip-sync timer runs \`pke-agent vip sync\`); rerun once it has, or power it off and rerun to remove it as dead`,
        );
      }
      await sleep(this.options.pollMs, undefined, { signal: c.signal });
    }
    return { note: 'keepalived stopped on the node; a peer holds the VIP' };
  }

  private async moveEtcdLeader(c: StepContext): Promise<StepOutcome> {
    if (c.removal.dead) return { skipped: 'the node is dead: etcd elected a leader among the survivors' };
    const etcd = await c.etcd();
    const health = await memberHealth(etcd);
    const member = health.find((m) => m.name === c.node.name);
    if (!member) return { skipped: `no etcd member ${c.node.name}` };
    const leaderId = health.find((m) => m.healthy)?.leaderId;
    if (leaderId !== member.member.id) return { note: `${c.node.name} is not the etcd leader` };
    const target = health.find((m) => m.healthy && !m.learner && m.name !== c.node.name);
    if (!target) throw new Error(`no healthy etcd member to take over leadership from ${c.node.name}`);
    await etcd.moveLeader(member.member, target.member.id);
    return { note: `etcd leadership moved to ${target.name}` };
  }

  private async removeEtcdMember(c: StepContext): Promise<StepOutcome> {
    const etcd = await c.etcd();
    const health = await memberHealth(etcd);
    const member = health.find((m) => m.name === c.node.name);
    if (!member) return { skipped: `no etcd member ${c.node.name} (removed already, or it never joined)` };
    // Checked again right before: a member may have failed since the removal began.
    const refusal = quorumRefusal(health, c.node.name);
    if (refusal) throw new RemovalRefused(refusal);
    await this.retryUnhealthy(() => etcd.removeMember(member.member.id), c.signal);
    const left = (await etcd.members()).map((m) => m.name).sort();
    if (left.includes(c.node.name)) throw new Error(`etcd still lists member ${c.node.name} after its removal`);
    return { note: `etcd members now: ${left.join(', ')}` };
  }

  /**
   * etcd refuses a reconfiguration with "unhealthy cluster" until its leader has heard from
   * every member it counts for a while (its strict reconfiguration check), as it has not right
   * after leadership moved: asked again, up to a minute.
   */
  private async retryUnhealthy(change: () => Promise<void>, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + UNHEALTHY_RETRY_MS;
    for (;;) {
      try {
        await change();
        return;
      } catch (error) {
        if (!/unhealthy cluster/.test(errorMessage(error)) || Date.now() >= deadline) throw error;
      }
      await sleep(Math.max(this.options.pollMs, 1000), undefined, { signal });
    }
  }

  private async deleteNode(c: StepContext): Promise<StepOutcome> {
    const api = await c.api();
    if (!api) return { skipped: "the cluster's API is not known (never initialized)" };
    await api.deleteNode(c.node.name);
    return { note: `Node ${c.node.name} deleted` };
  }

  private async revoke(c: StepContext): Promise<StepOutcome> {
    const revoked = this.runtime.store.mutate((_, touch) => {
      const result = revokeNode(c.cluster, c.node, Date.now());
      touch.node(c.cluster.id, c.node.name);
      touch.cluster(c.cluster.id);
      return result;
    });
    if (revoked.joinTokenId !== undefined) await deleteJoinToken(c.cluster, revoked.joinTokenId, this.runtime);
    return { note: `${revoked.jtis.length} node token(s) revoked` };
  }

  private async destroyVm(c: StepContext): Promise<StepOutcome> {
    const machines = this.runtime.machines;
    if (!machines || !(await machines.owns(c.cluster.id, c.node.name)))
      return { skipped: 'the controller did not provision this VM: power it off and delete it yourself' };
    await machines.destroy(c.cluster.id, c.node.name, c.signal);
    return { note: 'VM powered off and destroyed' };
  }

  /** Waits until every remaining control-plane node has fetched the view without the node (and rewritten its keepalived peers). */
  private async awaitPeers(c: StepContext): Promise<StepOutcome> {
    const since = c.removal.steps.revoke?.at ?? Date.now();
    const deadline = Date.now() + this.options.peersTimeoutMs;
    for (;;) {
      const remaining = Object.values(c.cluster.nodes).filter(
        (n) => n.role === 'master' && n.registration !== undefined && n.removedAt === undefined && n.name !== c.node.name,
      );
      const behind = remaining.filter((n) => (this.viewFetches.get(`${c.cluster.id}/${n.name}`) ?? 0) < since).map((n) => n.name);
      if (behind.length === 0) return { note: `${remaining.map((n) => n.name).join(', ') || 'no node'} fetched the new peers` };
      if (Date.now() >= deadline) {
        return {
          note: `not fetched within ${this.options.peersTimeoutMs / 1000} s by ${behind.join(', ')}; their vip sync takes it up when it next runs`,
        };
      }
      await sleep(this.options.pollMs, undefined, { signal: c.signal });
    }
  }
}

interface StepContext {
  cluster: ClusterState;
  node: NodeState;
  removal: NodeRemoval;
  signal: AbortSignal;
  api(): Promise<ClusterApi | undefined>;
  etcd(): Promise<ClusterEtcd>;
}

function skip(why: string): Promise<StepOutcome> {
  return Promise.resolve({ skipped: why });
}

interface MemberHealth {
  name: string;
  learner: boolean;
  healthy: boolean;
  leaderId?: string;
  member: EtcdMember;
}

/** Every member and whether it answers its status without errors, asked at once. */
async function memberHealth(etcd: ClusterEtcd): Promise<MemberHealth[]> {
  const members = await etcd.members();
  return Promise.all(
    members.map(async (member) => {
      const status = await etcd.status(member).catch(() => undefined);
      return {
        name: member.name,
        learner: member.learner,
        healthy: status !== undefined && status.errors.length === 0 && status.leaderId !== '0',
        leaderId: status?.leaderId,
        member,
      };
    }),
  );
}

/** The removal as status shows it. */
export function removalStatus(node: NodeState): NodeStatus['removal'] {
  const removal = node.removal;
  if (!removal) return undefined;
  return {
    state: removal.state,
    step: removal.step,
    dead: removal.dead,
    steps: STEPS.flatMap((name) => {
      const step = removal.steps[name];
      return step ? [{ name, state: step.state, at: new Date(step.at).toISOString(), note: step.note }] : [];
    }),
  };
}
