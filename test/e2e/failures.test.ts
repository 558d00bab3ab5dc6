import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.ts';
import { journalOf, destroyedAfterEach, namespaceSkipReason, scenarioLab, type ScenarioLab } from './harness.ts';

/** Failures a platform engineer must see at once: on the node, in the controller, with the cause. */
const skip = await namespaceSkipReason();
const track = destroyedAfterEach();
let s: ScenarioLab;

type ClusterStatus = { nodes: { name: string; phase?: string; phaseState?: string; lastError?: string }[] };
type NodeStatus = {
  phases: { name: string; state: string; error?: { message: string; command?: string; exitCode?: number; stderrTail?: string } }[];
};

async function expectReported(s: ScenarioLab, nodeName: string, phase: string, message: RegExp): Promise<NodeStatus['phases'][number]> {
  const node = s.node(nodeName);
  const local = (await s.lab.nodeStatus(node)) as NodeStatus;
  const row = local.phases.find((p) => p.name === phase)!;
  expect(row.state).toBe('failed');
  expect(row.error?.message).toMatch(message);
  const cluster = (await s.lab.clusterStatus()) as ClusterStatus;
  const record = cluster.nodes.find((n) => n.name === nodeName)!;
  expect(record).toMatchObject({ phase, phaseState: 'failed' });
  expect(record.lastError).toMatch(message);
  return row;
}

describe.skipIf(skip)('clear failures, reported to the controller', () => {
  it('a VIP that is not on the control-plane network fails register, naming the VIP and the network', async () => {
    s = track(await scenarioLab('vip', { masters: 1, workers: 0, vip: '203.0.113.100' }));
    expect(await s.boot(s.node('m1'))).toBe(1);
    await expectReported(
      s,
      'm1',
      'register',
      /controlPlaneEndpoint\.vip 203\.0\.113\.100 is not on the network of eth0 \(198\.51\.100\.\d+\/24\)/,
    );
    expect(journalOf(s.node('m1')).phases.elect).toBeUndefined();
  }, 180_000);

  it('a missing binary fails preflight, naming it, before anything is changed', async () => {
    s = track(await scenarioLab('bin', { masters: 1, workers: 0 }));
    const node = s.node('m1');
    // The VM's PATH with every stand-in but kubeadm.
    const bin = path.join(s.lab.options.workDir, 'bin-without-kubeadm');
    mkdirSync(bin);
    const standins = path.join(REPO, 'test/standins/bin');
    for (const tool of readdirSync(standins).filter((t) => t !== 'kubeadm')) symlinkSync(path.join(standins, tool), path.join(bin, tool));
    const env = s.lab.nodeEnvironment(node);
    expect(await s.boot(node, { PATH: env.PATH!.replace(standins, bin) })).toBe(1);
    await expectReported(s, 'm1', 'preflight', /preflight failed: binaries: not found on PATH: kubeadm/);
    expect(s.calls(node)).toEqual([]);
  }, 180_000);

  it('a failed join fails kube-join with the command, its exit code and stderr tail', async () => {
    s = track(await scenarioLab('join', { masters: 1, workers: 1 }));
    expect(await s.boot(s.node('m1'))).toBe(0);
    const failure = 'join:the kubelet configuration is invalid: cgroupDriver "cgroupfs" does not match the runtime:99';
    expect(await s.boot(s.node('w1'), { PKE_STANDIN_KUBEADM_FAIL: failure })).toBe(1);
    const row = await expectReported(s, 'w1', 'kube-join', /kubeadm join --config \/etc\/kubernetes\/pke\/kubeadm-join\.yaml.* exited 1/);
    expect(row.error).toMatchObject({ command: expect.stringContaining('kubeadm join'), exitCode: 1 });
    expect(row.error?.stderrTail).toContain('the kubelet configuration is invalid');
    // Not a transient error: one attempt, no retries.
    expect(s.calls(s.node('w1'), 'kubeadm').filter((c) => c.argv[0] === 'join')).toHaveLength(1);
  }, 180_000);
});
