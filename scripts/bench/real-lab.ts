// The real tier's formation: 3 control-plane and 2 worker VMs running real kubeadm, kubelet,
// containerd, etcd and control plane (built from their Go modules), timed from power-on to all
// five nodes Ready, with the machine's memory in use sampled throughout (MemTotal less
// MemAvailable, less what was in use before the lab was made): the peak is what the formation
// cost this machine. One formation: each takes a minute or more on two cores.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ensureBuilt } from '../ensure-built.ts';
import { realBinaries } from '../kubernetes/real-binaries.ts';
import type { BenchSection } from '../bench.ts';
import { NEWEST_RELEASE } from '../kubernetes/releases.ts';
import { Lab, REPO } from '../lab/cluster.ts';
import { namespacesAvailable } from '../lab/network.ts';

const MASTERS = 3;
const WORKERS = 2;
const SAMPLE_MS = 250;

export async function benchRealLab(): Promise<BenchSection> {
  const available = await namespacesAvailable();
  if (!available.ok) throw new Error(`bench real-lab: ${available.reason}`);
  const binaries = realBinaries(NEWEST_RELEASE, ['kubeadm', 'kubelet', 'kube-apiserver', 'etcd']);
  if (!binaries.available) throw new Error(`bench real-lab: ${binaries.reason}`);
  const executable = await ensureBuilt();
  const baselineMb = memoryInUseMb();
  let peakMb = baselineMb;
  const sampler = setInterval(() => {
    peakMb = Math.max(peakMb, memoryInUseMb());
  }, SAMPLE_MS);
  const lab = await Lab.create({
    prefix: 'pke-bench-real-',
    workDir: path.join(REPO, '.cache/bench-real-lab'),
    executable,
    masters: MASTERS,
    workers: WORKERS,
    real: NEWEST_RELEASE,
  });
  try {
    const phases = new Map<string, number>();
    const started = Date.now();
    const readyMs = await Promise.all(
      lab.nodes.map(async (node) => {
        const result = await lab.startNode(node, (line) => {
          if (line.event === 'phase.done' && typeof line.ms === 'number' && line.phase) phases.set(`${node.name} ${line.phase}`, line.ms);
        });
        if (result.exitCode !== 0)
          throw new Error(`bench real-lab: ${node.name} failed (exit ${result.exitCode}); see ${lab.options.workDir}/${node.name}.log`);
        return Date.now() - started;
      }),
    );
    const totalMs = Math.max(...readyMs);
    return {
      name: 'real-lab',
      summary: `${MASTERS} control-plane + ${WORKERS} workers, real Kubernetes v${NEWEST_RELEASE.version} (kubeadm, kubelet, containerd, etcd, control plane), power-on to all Ready; memory in use above the machine's before the lab`,
      metrics: [
        { name: 'all nodes Ready', value: totalMs / 1000, unit: 's', max: 120 },
        { name: 'peak memory of the formation', value: Math.round(peakMb - baselineMb), unit: 'MB' },
      ],
      details: {
        nodeReadySeconds: Object.fromEntries(lab.nodes.map((n, i) => [n.name, readyMs[i]! / 1000])),
        slowPhasesMs: Object.fromEntries([...phases].filter(([, ms]) => ms >= 1000)),
      },
    };
  } finally {
    clearInterval(sampler);
    await lab.destroy();
  }
}

function memoryInUseMb(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(info)?.[1] ?? 0);
  return (field('MemTotal') - field('MemAvailable')) / 1024;
}
