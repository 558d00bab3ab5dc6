// Lab formation: 3 control-plane and 10 worker VMs in network namespaces, with the kubeadm
// stand-in's init and join durations fixed, timed from power-on to the last node ready. The
// overhead is what pke-agent adds over the critical path nothing can shorten: init, then the
// control-plane joins one after another, then one worker join (the workers join in parallel).
// Thirteen VMs share this machine's cores, so one formation varies by a second or more from the
// next: the section forms the cluster three times, each on a fresh lab, and reports the median.
import path from 'node:path';
import { ensureBuilt } from '../ensure-built.ts';
import type { BenchSection } from '../bench.ts';
import { Lab, REPO } from '../lab/cluster.ts';
import { namespacesAvailable } from '../lab/network.ts';

const MASTERS = 3;
const WORKERS = 10;
const INIT_MS = 3000;
const JOIN_MS = 2000;
const FORMATIONS = 3;

interface Formation {
  totalMs: number;
  nodeReadyMs: Record<string, number>;
  slowestPhaseMs: Record<string, number>;
}

export async function benchLab(): Promise<BenchSection> {
  const available = await namespacesAvailable();
  if (!available.ok) throw new Error(`bench lab: ${available.reason}`);
  const executable = await ensureBuilt();
  const formations: Formation[] = [];
  for (let i = 0; i < FORMATIONS; i++) formations.push(await formCluster(executable));
  const sorted = [...formations].sort((a, b) => a.totalMs - b.totalMs);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const criticalPathMs = INIT_MS + (MASTERS - 1) * JOIN_MS + JOIN_MS;
  return {
    name: 'lab',
    summary: `${MASTERS} control-plane + ${WORKERS} workers in network namespaces, kubeadm init ${INIT_MS} ms and join ${JOIN_MS} ms (stand-in), power-on to all ready, median of ${FORMATIONS} formations`,
    metrics: [
      { name: 'all nodes ready', value: median.totalMs / 1000, unit: 's' },
      { name: 'critical path (init, CP joins, a worker join)', value: criticalPathMs / 1000, unit: 's' },
      { name: 'overhead over the critical path', value: (median.totalMs - criticalPathMs) / 1000, unit: 's', max: 2 },
    ],
    details: {
      allReadySeconds: formations.map((f) => f.totalMs / 1000),
      median: { slowestPhaseMs: median.slowestPhaseMs, nodeReadyMs: median.nodeReadyMs },
    },
  };
}

async function formCluster(executable: string): Promise<Formation> {
  const lab = await Lab.create({
    prefix: 'pke-bench-',
    workDir: path.join(REPO, '.cache/bench-lab'),
    executable,
    masters: MASTERS,
    workers: WORKERS,
    nodeEnv: { PKE_STANDIN_KUBEADM_INIT_MS: String(INIT_MS), PKE_STANDIN_KUBEADM_JOIN_MS: String(JOIN_MS) },
  });
  try {
    const phaseTimes = new Map<string, number[]>();
    const started = Date.now();
    const finished = await Promise.all(
      lab.nodes.map(async (node) => {
        const result = await lab.startNode(node, (line) => {
          if (line.event === 'phase.done' && typeof line.ms === 'number' && line.phase) {
            phaseTimes.set(line.phase, [...(phaseTimes.get(line.phase) ?? []), line.ms]);
          }
        });
        if (result.exitCode !== 0)
          throw new Error(`bench lab: ${node.name} failed (exit ${result.exitCode}); see ${lab.options.workDir}/${node.name}.log`);
        return Date.now() - started;
      }),
    );
    return {
      totalMs: Math.max(...finished),
      nodeReadyMs: Object.fromEntries(lab.nodes.map((n, i) => [n.name, finished[i]!])),
      slowestPhaseMs: Object.fromEntries([...phaseTimes].map(([phase, times]) => [phase, Math.max(...times)])),
    };
  } finally {
    await lab.destroy();
  }
}
