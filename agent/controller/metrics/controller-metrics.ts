import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { liveSlot } from '../formation/join-slots.ts';
import { leaseHolder } from '../formation/lease.ts';
import type { AnsweredRequest, RequestObserver } from '../http/server.ts';
import { nodeState } from '../status/cluster-status.ts';
import type { ControllerState, NodeState, PhaseRun } from '../store/state.ts';

/**
 * What `/metrics` shows, with prom-client: one registry per controller (tests run several in one
 * process). Requests, phase durations and join-slot waits are counted as they happen; nodes by
 * state, leases and join slots are read from the state at each scrape.
 */

const PREFIX = 'pke_controller_';
/** Long-polls wait up to 300 s; most answers take milliseconds. */
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const PHASE_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800];
/** The agent has a dozen phases; a node cannot grow the label set past this. */
const MAX_PHASE_LABELS = 32;
const WAIT_BUCKETS = [0.05, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

export class ControllerMetrics implements RequestObserver {
  readonly registry = new Registry();
  private readonly requests: Histogram<'method' | 'route' | 'status'>;
  private readonly phases: Histogram<'phase' | 'role' | 'outcome'>;
  private readonly slotWait: Histogram<'cluster'>;
  private readonly phaseNames = new Set<string>();
  /** Control-plane nodes that found the join slot busy, by cluster and node: since when (epoch ms). */
  private readonly waitingSince = new Map<string, Map<string, number>>();

  constructor(state: () => Readonly<ControllerState>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    this.requests = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from a request to its answer (long-polls and event streams included), by route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.phases = new Histogram({
      name: `${PREFIX}phase_duration_seconds`,
      help: 'How long bootstrap phase runs took on the nodes, from their start and end reports, by outcome.',
      labelNames: ['phase', 'role', 'outcome'],
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.slotWait = new Histogram({
      name: `${PREFIX}join_slot_wait_seconds`,
      help: 'How long a control-plane node waited for the join slot after finding it busy (0: it was free).',
      labelNames: ['cluster'],
      buckets: WAIT_BUCKETS,
      registers,
    });

    const nodes = new Gauge({
      name: `${PREFIX}nodes`,
      help: 'Nodes by cluster, role and state (pending, registered, bootstrapping, failed, ready, revoked).',
      labelNames: ['cluster', 'role', 'state'],
      registers,
      collect: () => {
        nodes.reset();
        for (const cluster of Object.values(state().clusters)) {
          for (const node of Object.values(cluster.nodes) as NodeState[])
            nodes.inc({ cluster: cluster.id, role: node.role, state: nodeState(node) });
        }
      },
    });
    const epoch = new Gauge({
      name: `${PREFIX}leader_lease_epoch`,
      help: 'The epoch of the leader lease: how many leases the cluster has granted.',
      labelNames: ['cluster'],
      registers,
      collect: () => {
        epoch.reset();
        for (const cluster of Object.values(state().clusters)) epoch.set({ cluster: cluster.id }, cluster.leader.epoch);
      },
    });
    const held = new Gauge({
      name: `${PREFIX}leader_lease_held`,
      help: '1 while a node holds a live leader lease (for good once the cluster is initialized).',
      labelNames: ['cluster'],
      registers,
      collect: () => {
        held.reset();
        const now = Date.now();
        for (const cluster of Object.values(state().clusters))
          held.set({ cluster: cluster.id }, leaseHolder(cluster, now) === undefined ? 0 : 1);
      },
    });
    const remaining = new Gauge({
      name: `${PREFIX}leader_lease_remaining_seconds`,
      help: 'Seconds until the live leader lease expires unless renewed (only before the cluster is initialized).',
      labelNames: ['cluster'],
      registers,
      collect: () => {
        remaining.reset();
        const now = Date.now();
        for (const cluster of Object.values(state().clusters)) {
          const { expiresAt, initialized } = cluster.leader;
          if (!initialized && expiresAt !== undefined && leaseHolder(cluster, now) !== undefined)
            remaining.set({ cluster: cluster.id }, (expiresAt - now) / 1000);
        }
      },
    });
    const initialized = new Gauge({
      name: `${PREFIX}cluster_initialized`,
      help: "1 once the leader's kubeadm init is done.",
      labelNames: ['cluster'],
      registers,
      collect: () => {
        initialized.reset();
        for (const cluster of Object.values(state().clusters)) initialized.set({ cluster: cluster.id }, cluster.leader.initialized ? 1 : 0);
      },
    });
    const slotHeld = new Gauge({
      name: `${PREFIX}join_slot_held`,
      help: '1 while a control-plane node holds the join slot.',
      labelNames: ['cluster'],
      registers,
      collect: () => {
        slotHeld.reset();
        const now = Date.now();
        for (const cluster of Object.values(state().clusters)) slotHeld.set({ cluster: cluster.id }, liveSlot(cluster, now) ? 1 : 0);
      },
    });
    const waiting = new Gauge({
      name: `${PREFIX}join_slot_waiting`,
      help: 'Control-plane nodes waiting for the join slot now.',
      labelNames: ['cluster'],
      registers,
      collect: () => {
        waiting.reset();
        for (const cluster of Object.values(state().clusters))
          waiting.set({ cluster: cluster.id }, this.waitingSince.get(cluster.id)?.size ?? 0);
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  answered(request: AnsweredRequest): void {
    this.requests.observe({ method: request.method, route: request.route, status: String(request.status) }, request.seconds);
  }

  phaseEnded(role: string, run: PhaseRun): void {
    if (run.endedAt === undefined) return;
    this.phases.observe({ phase: this.phaseLabel(run.phase), role, outcome: run.outcome }, (run.endedAt - run.startedAt) / 1000);
  }

  /** Phase names come from the nodes: past MAX_PHASE_LABELS distinct ones, the rest count as `other`. */
  private phaseLabel(phase: string): string {
    if (this.phaseNames.has(phase)) return phase;
    if (this.phaseNames.size >= MAX_PHASE_LABELS || !/^[a-z][a-z0-9-]{0,31}$/.test(phase)) return 'other';
    this.phaseNames.add(phase);
    return phase;
  }

  /** A control-plane node asked to join while another held the slot. */
  slotBusy(cluster: string, node: string, now: number): void {
    let nodes = this.waitingSince.get(cluster);
    if (!nodes) this.waitingSince.set(cluster, (nodes = new Map()));
    if (!nodes.has(node)) nodes.set(node, now);
  }

  /** The node took the join slot: its wait, if it waited, is over. */
  slotTaken(cluster: string, node: string, now: number): void {
    const nodes = this.waitingSince.get(cluster);
    const since = nodes?.get(node);
    nodes?.delete(node);
    if (nodes?.size === 0) this.waitingSince.delete(cluster);
    this.slotWait.observe({ cluster }, since === undefined ? 0 : (now - since) / 1000);
  }
}
