// A rolling Kubernetes upgrade in the real tier: 3 control-plane and 2 worker VMs formed at the
// older built release, the newer one staged on each, then `controller cluster upgrade` and
// `pke-agent upgrade` on every node at once; the controller hands out the turns. Timed per node
// (its turn granted to its report taken) and in all (the upgrade started to the last report),
// while a prober in the controller's namespace asks the API server's /livez through the VIP
// every 200 ms: failed probes and the longest outage, against the VIP's takeover time.
import path from 'node:path';
import { execa } from 'execa';
import { ensureBuilt } from '../ensure-built.ts';
import type { BenchSection } from '../bench.ts';
import { KUBERNETES_RELEASES, NEWEST_RELEASE } from '../kubernetes/releases.ts';
import { realBinaries } from '../kubernetes/real-binaries.ts';
import { Lab, REPO } from '../lab/cluster.ts';
import { namespacesAvailable } from '../lab/network.ts';

const MASTERS = 3;
const WORKERS = 2;
const PROBE_INTERVAL_S = 0.2;
/**
 * The VIP's takeover budget (the failover target of `npm run lab -- --failover`, where the real
 * tier measured 3.6 s from the holder's kube-apiserver killed to the VIP answering elsewhere).
 */
const VIP_TAKEOVER_S = 5;

const OLDER = KUBERNETES_RELEASES.find((release) => release.version !== NEWEST_RELEASE.version)!;
const NEWER = NEWEST_RELEASE;

export async function benchRealUpgrade(): Promise<BenchSection> {
  const available = await namespacesAvailable();
  if (!available.ok) throw new Error(`bench real-upgrade: ${available.reason}`);
  for (const release of [OLDER, NEWER]) {
    const binaries = realBinaries(release, ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'etcd']);
    if (!binaries.available) throw new Error(`bench real-upgrade: ${binaries.reason}`);
  }
  const executable = await ensureBuilt();
  const lab = await Lab.create({
    prefix: 'pke-bench-upg-',
    workDir: path.join(REPO, '.cache/bench-real-upgrade'),
    executable,
    masters: MASTERS,
    workers: WORKERS,
    real: OLDER,
  });
  try {
    const formed = await Promise.all(lab.nodes.map((node) => lab.startNode(node)));
    const failed = lab.nodes.filter((_, i) => formed[i]?.exitCode !== 0).map((n) => n.name);
    if (failed.length > 0) throw new Error(`bench real-upgrade: the formation failed on ${failed.join(', ')}; see ${lab.options.workDir}`);
    for (const node of lab.nodes) await lab.stageRelease(node, NEWER);

    const prober = probeVip(lab);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const started = Date.now();
    await lab.controllerCli(['cluster', 'upgrade', '--cluster', lab.clusterName, '--to', NEWER.version]);
    const turns = new Map<string, { granted?: number; reported?: number }>();
    const results = await Promise.all(
      lab.nodes.map((node) =>
        lab.startAgent(node, ['upgrade', '--json'], (line) => {
          const turn = turns.get(node.name) ?? {};
          if (line.event === 'phase.done' && line.phase === 'upgrade-turn') turn.granted = Date.parse(line.time);
          if (line.event === 'phase.done' && line.phase === 'upgrade-report') turn.reported = Date.parse(line.time);
          turns.set(node.name, turn);
        }),
      ),
    );
    const totalS = (Date.now() - started) / 1000;
    const probes = await prober.stop();
    const upgradeFailed = lab.nodes.filter((_, i) => results[i]?.exitCode !== 0).map((n) => n.name);
    if (upgradeFailed.length > 0)
      throw new Error(`bench real-upgrade: the upgrade failed on ${upgradeFailed.join(', ')}; see ${lab.options.workDir}`);

    const perNode = Object.fromEntries(
      lab.nodes.map((n) => {
        const turn = turns.get(n.name);
        return [n.name, turn?.granted && turn.reported ? (turn.reported - turn.granted) / 1000 : undefined];
      }),
    );
    const outage = outages(probes);
    return {
      name: 'real-upgrade',
      summary: `rolling upgrade of ${MASTERS} control-plane + ${WORKERS} workers from real Kubernetes v${OLDER.version} to v${NEWER.version} (kubeadm upgrade apply, then node, one node at a time, each drained and uncordoned), with /livez probed through the VIP every ${PROBE_INTERVAL_S * 1000} ms`,
      metrics: [
        { name: 'whole upgrade', value: totalS, unit: 's' },
        { name: 'slowest node (its turn to its report)', value: Math.max(...Object.values(perNode).map((s) => s ?? 0)), unit: 's' },
        { name: 'failed /livez probes through the VIP', value: outage.failed, unit: 'count' },
        { name: 'longest /livez outage through the VIP', value: outage.longestS, unit: 's', max: VIP_TAKEOVER_S },
      ],
      details: { nodeSeconds: perNode, probes: probes.length, outages: outage.spans, vipTakeoverSeconds: VIP_TAKEOVER_S },
    };
  } finally {
    await lab.destroy();
  }
}

interface Probe {
  at: number;
  ok: boolean;
}

/** curl in a loop in the controller's namespace: one line per probe, its time and HTTP status. */
function probeVip(lab: Lab): { stop: () => Promise<Probe[]> } {
  const namespace = lab.network.hosts.find((h) => h.name === 'ctl')!.namespace;
  const url = `https://${lab.network.vip}:6443/livez`;
  const script = `while :; do c=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 ${url}); echo "$(date +%s%3N) $c"; sleep ${PROBE_INTERVAL_S}; done`;
  const child = execa('ip', ['netns', 'exec', namespace, 'sh', '-c', script], { reject: false, buffer: false, stdin: 'ignore' });
  const probes: Probe[] = [];
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const [at, code] = line.split(' ');
      if (at && code) probes.push({ at: Number(at), ok: code === '200' });
    }
  });
  return {
    stop: async () => {
      child.kill('SIGKILL');
      await child.catch(() => undefined);
      return probes;
    },
  };
}

/** Failed probes, and each run of failures from its first failed probe to the next success. */
function outages(probes: Probe[]): { failed: number; longestS: number; spans: { from: string; seconds: number }[] } {
  const spans: { from: string; seconds: number }[] = [];
  let start: number | undefined;
  for (const probe of probes) {
    if (!probe.ok && start === undefined) start = probe.at;
    if (probe.ok && start !== undefined) {
      spans.push({ from: new Date(start).toISOString(), seconds: (probe.at - start) / 1000 });
      start = undefined;
    }
  }
  if (start !== undefined) spans.push({ from: new Date(start).toISOString(), seconds: (probes.at(-1)!.at - start) / 1000 });
  return {
    failed: probes.filter((p) => !p.ok).length,
    longestS: Math.max(0, ...spans.map((s) => s.seconds)),
    spans,
  };
}
