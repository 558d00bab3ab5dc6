import { describe, expect, it, vi } from 'vitest';
import { PHASES } from '../../agent/phases/index.ts';
import { journalOf, destroyedAfterEach, namespaceSkipReason, scenarioLab, type ScenarioLab } from './harness.ts';
import type { LabNode } from '../../scripts/lab/cluster.ts';

/** Crashes, restarts and lost leaders, acted out on whole clusters in network namespaces. */
const skip = await namespaceSkipReason();
const track = destroyedAfterEach();
let s: ScenarioLab;

const started = (phase: string) => (line: { event: string; phase?: string }) => line.event === 'phase.start' && line.phase === phase;

/** Until the stand-in kubeadm has been called with `verb` on the node (its call log), at most 60 s: a fixed delay lands before the call on a busy machine. */
async function kubeadmCalled(s: ScenarioLab, node: LabNode, verb: string): Promise<void> {
  for (let waited = 0; waited < 60_000; waited += 100) {
    if (s.calls(node, 'kubeadm').some((c) => c.argv[0] === verb)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`kubeadm ${verb} was not called on ${node.name} within 60 s`);
}

describe.skipIf(skip)('crash and rerun', () => {
  it('converges after the agent is SIGKILLed during each phase, and init completes exactly once', async () => {
    s = track(await scenarioLab('kill', { masters: 1, workers: 1 }));
    const master = s.node('m1');
    const worker = s.node('w1');
    // kubeadm takes a moment, so that a kill once it has been called lands inside kube-init and kube-join.
    const env = { PKE_STANDIN_KUBEADM_INIT_MS: '3000', PKE_STANDIN_KUBEADM_JOIN_MS: '3000' };
    const workerRun = (async () => {
      const killed = await s.bootUntil(worker, started('kube-join'), env);
      expect(killed.matched).toBe(true);
      await kubeadmCalled(s, worker, 'join');
      await s.killAgent(worker);
      return s.boot(worker, env);
    })();

    for (const phase of PHASES.filter((p) => p.name !== 'kube-join')) {
      const run = await s.bootUntil(master, started(phase.name), env);
      expect(run.matched, `the run reached ${phase.name}`).toBe(true);
      if (phase.name === 'kube-init') await kubeadmCalled(s, master, 'init');
      await s.killAgent(master);
      expect(journalOf(master).phases[phase.name]?.state, `${phase.name} after the kill`).toBe('running');
    }
    expect(await s.boot(master, env)).toBe(0);
    expect(await workerRun).toBe(0);

    const journal = journalOf(master);
    for (const phase of PHASES) {
      const record = journal.phases[phase.name]!;
      expect(['done', 'skipped'], phase.name).toContain(record.state);
    }
    // Each phase that was interrupted ran again from its start: two attempts, finished phases one.
    expect(journal.phases.preflight?.attempts).toBe(2);
    expect(journal.phases['signal-ready']?.attempts).toBe(2);

    const kubeadm = s.calls(master, 'kubeadm').map((c) => c.argv[0]);
    // The interrupted init was reset before the one init that completed; nothing else ran init.
    expect(kubeadm.filter((verb) => verb === 'init')).toHaveLength(2);
    expect(kubeadm.filter((verb) => verb === 'reset')).toHaveLength(1);
    expect(kubeadm.indexOf('reset')).toBeGreaterThan(kubeadm.indexOf('init'));
    expect(kubeadm.lastIndexOf('init')).toBeGreaterThan(kubeadm.indexOf('reset'));
    const status = (await s.lab.clusterStatus()) as { nodes: { name: string; readyAt?: string }[] };
    expect(status.nodes.every((n) => n.readyAt)).toBe(true);
  }, 300_000);

  it('converges when the controller is down for a while in the middle', async () => {
    s = track(await scenarioLab('ctl', { masters: 2, workers: 1 }));
    const lab = s.lab;
    const runs = lab.nodes.map((node) => s.bootUntil(node, started('host-prep'), { PKE_STANDIN_KUBEADM_INIT_MS: '1000' }));
    const first = await Promise.race(runs);
    expect(first.matched).toBe(true);
    await lab.stopController('SIGKILL');
    await new Promise((r) => setTimeout(r, 4000));
    await lab.startController();
    const codes = await Promise.all(runs.map(async (run) => (await run).done));
    expect(codes).toEqual([0, 0, 0]);
    const status = (await lab.clusterStatus()) as { nodes: { readyAt?: string }[] };
    expect(status.nodes).toHaveLength(3);
    expect(status.nodes.every((n) => n.readyAt)).toBe(true);
  }, 300_000);

  it('hands leadership to another control-plane node when the leader dies before the cluster is initialized, and fences the old one', async () => {
    s = track(await scenarioLab('lead', { masters: 2, workers: 0, leaseTtl: '4s' }));
    const env = { PKE_STANDIN_KUBEADM_INIT_MS: '3000' };
    const leaderName = await new Promise<string>((resolve) => {
      for (const node of s.lab.nodes) {
        void s
          .bootUntil(node, (line) => line.event === 'elect.leader', env)
          .then((run) => {
            if (run.matched) resolve(node.name);
          });
      }
    });
    const oldLeader = s.node(leaderName);
    const other = s.lab.nodes.find((n) => n !== oldLeader)!;
    // Power cut in the middle of kubeadm init.
    await new Promise((r) => setTimeout(r, 1500));
    await s.powerCut(oldLeader);

    expect(await other.bootstrap!.then((r) => r.exitCode)).toBe(0);
    expect(journalOf(other).phases['kube-init']?.state).toBe('done');
    const status = (await s.lab.clusterStatus()) as { leader: { holder?: string; epoch: number; initialized: boolean } };
    expect(status.leader).toMatchObject({ holder: other.name, initialized: true });
    expect(status.leader.epoch).toBeGreaterThanOrEqual(2);

    // The old leader comes back: its lease is fenced, so it elects again and joins instead.
    expect(await s.boot(oldLeader, env)).toBe(0);
    expect(s.logs.get(oldLeader.name)?.some((l) => l.event === 'elect.fenced')).toBe(true);
    const journal = journalOf(oldLeader);
    expect(journal.phases['kube-init']?.state).toBe('skipped');
    expect(journal.phases['kube-join']?.state).toBe('done');
  }, 300_000);

  it('has a leader frozen past its lease step down when it wakes: its init stopped and undone, its keepalived stopped', async () => {
    s = track(await scenarioLab('frozen', { masters: 2, workers: 0, leaseTtl: '4s' }));
    // A long init, so that it is still running when the frozen leader wakes.
    const env = { PKE_STANDIN_KUBEADM_INIT_MS: '15000' };
    const electedAt = new Map(s.lab.nodes.map((node) => [node.name, s.bootUntil(node, (line) => line.event === 'elect.leader', env)]));
    const leaderName = await Promise.race(
      [...electedAt].map(async ([name, run]) => ((await run).matched ? name : new Promise<string>(() => {}))),
    );
    const oldLeader = s.node(leaderName);
    const other = s.lab.nodes.find((n) => n !== oldLeader)!;
    await vi.waitFor(() => expect(s.calls(oldLeader, 'kubeadm').map((c) => c.argv[0])).toContain('init'), {
      timeout: 20_000,
      interval: 100,
    });

    // The agent stops (SIGSTOP) while its kubeadm and keepalived go on; the other node takes the lease.
    const pid = oldLeader.bootstrap!.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      expect((await electedAt.get(other.name)!).matched).toBe(true);
    } finally {
      process.kill(pid, 'SIGCONT');
    }

    // Its next renewal is refused: the run ends, stepping down.
    expect((await oldLeader.bootstrap!).exitCode).toBe(1);
    const events = (s.logs.get(oldLeader.name) ?? []).map((l) => l.event);
    expect(events).toEqual(expect.arrayContaining(['lease.lost', 'kube-init.reset', 'vip.released', 'command.failed']));
    expect(s.calls(oldLeader, 'kubeadm').map((c) => c.argv[0])).toEqual(['init', 'reset']);
    expect(s.calls(oldLeader, 'systemctl').map((c) => c.argv.join(' '))).toContain('stop keepalived');
    expect(journalOf(oldLeader).phases['kube-init']?.state).toBe('failed');

    // The other node initializes the cluster; the old leader's next run joins it.
    expect((await other.bootstrap!).exitCode).toBe(0);
    expect(await s.boot(oldLeader, { PKE_STANDIN_KUBEADM_JOIN_MS: '500' })).toBe(0);
    expect(journalOf(oldLeader).phases['kube-join']?.state).toBe('done');
  }, 300_000);
});
