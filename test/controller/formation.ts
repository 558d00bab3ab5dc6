import type { PhaseEvent } from '../../agent/protocol/api.ts';
import {
  addNode,
  createLocalCluster,
  registration,
  startClusterApi,
  type ClusterApiStandin,
  type TestController,
  type TestNode,
} from './helpers.ts';

/**
 * A cluster's formation acted out over the controller's API, call by call as the agents make
 * them (register, claim, init grant, joined with admin.conf, control-plane joins through the
 * join slot, worker joins, ready), with phase reports whose times (the nodes' clocks) are laid
 * out as a real formation's would be: init, then each control-plane join in turn, the workers
 * in parallel. A worker named in `failing` fails its kube-join with `failure`.
 */

export interface Formation {
  cluster: string;
  nodes: TestNode[];
  /** Phase runs reported, by node: [phase, outcome, message?]. */
  runs: Map<string, { phase: string; outcome: 'done' | 'failed'; message?: string }[]>;
  /** POSTs of phase reports made. */
  eventPosts: number;
  close(): Promise<void>;
}

export interface FormationOptions {
  masters: number;
  workers: number;
  failing?: string;
  failure?: string;
  /** Pause between steps, so that a watcher sees the formation unfold (ms). */
  stepMs?: number;
  onStep?: (what: string) => void;
  /** Called with the new cluster's id; the formation begins when the promise it returns settles (a watcher opens its page). */
  beforeFormation?: (cluster: string) => Promise<void>;
}

const SECOND = 1000;
type Plan = [phase: string, ms: number][];
const BEFORE_ELECT: Plan = [
  ['preflight', 0.4 * SECOND],
  ['register', 0.1 * SECOND],
  ['host-prep', 1.6 * SECOND],
];
const AFTER_JOIN_MASTER: Plan = [
  ['signal-joined', 0.05 * SECOND],
  ['vip', 0.8 * SECOND],
  ['wait-ready', 4 * SECOND],
  ['signal-ready', 0.05 * SECOND],
];
const AFTER_JOIN_WORKER: Plan = [
  ['signal-joined', 0.05 * SECOND],
  ['wait-ready', 3 * SECOND],
  ['signal-ready', 0.05 * SECOND],
];

export async function actOutFormation(t: TestController, options: FormationOptions): Promise<Formation> {
  const cluster = (await createLocalCluster(t.admin)).id;
  await options.beforeFormation?.(cluster);
  const nodes: TestNode[] = [];
  const runs: Formation['runs'] = new Map();
  let eventPosts = 0;
  let api: ClusterApiStandin | undefined;
  const pause = () => new Promise((resolve) => setTimeout(resolve, options.stepMs ?? 0));
  const t0 = Date.now() - 120 * SECOND;

  /** Reports a sequence of phases starting at `at`; returns when the last ended. */
  const report = async (node: TestNode, at: number, plan: Plan, fail?: { phase: string; message: string }): Promise<number> => {
    const events: PhaseEvent[] = [];
    let clock = at;
    for (const [phase, ms] of plan) {
      events.push({ phase, type: 'start', at: new Date(clock).toISOString(), attempt: 1 });
      clock += ms;
      const list = runs.get(node.name) ?? [];
      if (fail?.phase === phase) {
        events.push({
          phase,
          type: 'fail',
          at: new Date(clock).toISOString(),
          attempt: 1,
          message: fail.message,
          command: 'kubeadm join --config /etc/kubernetes/pke/kubeadm-join.yaml',
          exitCode: 1,
        });
        list.push({ phase, outcome: 'failed', message: fail.message });
      } else {
        events.push({ phase, type: 'end', at: new Date(clock).toISOString(), attempt: 1 });
        list.push({ phase, outcome: 'done' });
      }
      runs.set(node.name, list);
    }
    await node.client.events({ events });
    eventPosts += 1;
    options.onStep?.(`${node.name}: ${plan.map(([p]) => p).join(', ')}`);
    await pause();
    return clock;
  };

  const masters: TestNode[] = [];
  const workers: TestNode[] = [];
  for (let i = 1; i <= options.masters; i++) masters.push(await addNode(t.admin, cluster, `m${i}`, 'master'));
  for (let i = 1; i <= options.workers; i++) workers.push(await addNode(t.admin, cluster, `w${i}`, 'worker'));
  nodes.push(...masters, ...workers);
  const ready = new Map<string, number>();
  for (const [i, node] of nodes.entries()) {
    await node.client.register(registration(node.name, `192.0.2.${11 + i}`));
    const plan = node.config.role === 'master' ? [...BEFORE_ELECT, ['certs', 0.2 * SECOND] as [string, number]] : BEFORE_ELECT;
    ready.set(node.name, await report(node, t0 + i * 150, plan));
  }

  // The leader: elect, init, joined with admin.conf, then its own readiness.
  const [leader, ...others] = masters;
  if (!leader) throw new Error('a formation needs a control-plane node');
  const { epoch } = await leader.client.claimLeader({});
  await leader.client.join({ epoch });
  let clock = await report(leader, ready.get(leader.name)!, [['elect', 0.1 * SECOND]]);
  const initDone = await report(leader, clock, [['kube-init', 21 * SECOND]]);
  api = await startClusterApi(leader);
  await leader.client.joined({ epoch, adminKubeconfig: api.kubeconfig });
  clock = await report(leader, initDone, [...AFTER_JOIN_MASTER.slice(0, 2), ['addons', 3 * SECOND], ...AFTER_JOIN_MASTER.slice(2)]);
  await leader.client.ready({});

  // The other control-plane nodes, one at a time through the join slot; each waits for the one before.
  let slotFree = initDone;
  let next = others[0] ? others[0].client.join({}, { waitSeconds: 10 }) : undefined;
  for (const [i, node] of others.entries()) {
    await next;
    const elected = await report(node, ready.get(node.name)!, [['elect', initDone - ready.get(node.name)!]]);
    const joinedAt = await report(node, Math.max(elected, slotFree), [['kube-join', 12 * SECOND]]);
    // The next node asks while this one holds the slot: it waits until this one reports joined.
    const follower = others[i + 1];
    next = follower?.client.join({}, { waitSeconds: 10 });
    await pause();
    await node.client.joined({});
    slotFree = joinedAt;
    await report(node, joinedAt, AFTER_JOIN_MASTER);
    await node.client.ready({});
  }

  // Workers join in parallel once the leader has initialized.
  for (const node of workers) {
    const failing = node.name === options.failing;
    await node.client.join({}, { waitSeconds: 10 });
    const end = await report(
      node,
      initDone + 200,
      [['kube-join', 8 * SECOND]],
      failing ? { phase: 'kube-join', message: options.failure ?? 'kubeadm join failed' } : undefined,
    );
    if (failing) continue;
    await node.client.joined({});
    await report(node, end, AFTER_JOIN_WORKER);
    await node.client.ready({});
  }

  return {
    cluster,
    nodes,
    runs,
    get eventPosts() {
      return eventPosts;
    },
    close: async () => {
      await Promise.all(nodes.map((n) => n.client.close()));
      await api?.close();
    },
  };
}
