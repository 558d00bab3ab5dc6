// Lab formation: 3 control-plane and 10 worker VMs in network namespaces, with the kubeadm
// stand-in's init and join durations fixed, timed from power-on to the last node ready. The
// overhead is what pke-agent adds over the critical path nothing can shorten: init, then the
// control-plane joins one after another, then one worker join (the workers join in parallel).
import path from 'node:path';
import { ensureBuilt } from '../../test/helpers/build.ts';
import type { BenchSection } from '../bench.ts';
import { Lab, REPO } from '../lab/cluster.ts';
import { namespacesAvailable } from '../lab/network.ts';

const MASTERS = 3;
const WORKERS = 10;
const INIT_MS = 3000;
const JOIN_MS = 2000;

export async function benchLab(): Promise<BenchSection> {
  const available = await namespacesAvailable();
  if (!available.ok) throw new Error(`bench lab: ${available.reason}`);
  const executable = await ensureBuilt();
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
        if (result.exitCode !== 0) throw new Error(`bench lab: ${node.name} failed (exit ${result.exitCode}); see ${lab.options.workDir}/${node.name}.log`);
        return Date.now() - started;
      }),
    );
    const totalMs = Math.max(...finished);
    const criticalPathMs = INIT_MS + (MASTERS - 1) * JOIN_MS + JOIN_MS;
    const slowest = Object.fromEntries([...phaseTimes].map(([phase, times]) => [phase, Math.max(...times)]));
    return {
      name: 'lab',
      summary: `${MASTERS} control-plane + ${WORKERS} workers in network namespaces, kubeadm init ${INIT_MS} ms and join ${JOIN_MS} ms (stand-in), power-on to all ready`,
      metrics: [
        { name: 'all nodes ready', value: totalMs / 1000, unit: 's' },
        { name: 'critical path (init, CP joins, a worker join)', value: criticalPathMs / 1000, unit: 's' },
        { name: 'overhead over the critical path', value: (totalMs - criticalPathMs) / 1000, unit: 's', max: 2 },
      ],
      details: { slowestPhaseMs: slowest, nodeReadyMs: Object.fromEntries(lab.nodes.map((n, i) => [n.name, finished[i]])) },
    };
  } finally {
    await lab.destroy();
  }
}
