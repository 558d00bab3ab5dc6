import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upgradeJournalPath } from '../../agent/core/state-paths.ts';
import { fileOnDisk } from '../../scripts/lab/vm.ts';
import { KUBERNETES_RELEASES, NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { namespaceSkipReason, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * A rolling upgrade with real kubeadm, kubelet, etcd and control plane, from the older built
 * release to the newer one, in lab VMs; the agent on the worker SIGKILLed in the middle of its
 * kubeadm step, then run again.
 */
const OLDER = KUBERNETES_RELEASES.find((release) => release.version !== NEWEST_RELEASE.version)!;
const NEWER = NEWEST_RELEASE;
const needed = ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'] as const;
const missing = [realBinaries(OLDER, needed), realBinaries(NEWER, needed)].find((b) => !b.available);
const skip = (await namespaceSkipReason()) ?? (missing && !missing.available ? missing.reason : undefined);
if (skip) console.warn(`real-tier upgrade tests skipped: ${skip}`);

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON read back for assertions
type Json = Record<string, any>;

describe.skipIf(skip)(`real Kubernetes upgrade v${OLDER.version} -> v${NEWER.version}: 1 control-plane and 1 worker node`, () => {
  let s: ScenarioLab;
  const kubectlJson = async (...args: string[]): Promise<Json> => JSON.parse(await s.lab.kubectl(s.node('m1'), [...args, '-o', 'json']));
  const upgradeJournal = (name: string): Json =>
    JSON.parse(readFileSync(fileOnDisk(s.node(name).root, upgradeJournalPath(NEWER.version)), 'utf8'));

  beforeAll(async () => {
    s = await scenarioLab('upg', { masters: 1, workers: 1, real: OLDER });
    expect(await Promise.all([s.boot(s.node('m1')), s.boot(s.node('w1'))])).toEqual([0, 0]);
    for (const node of s.lab.nodes) await s.lab.stageRelease(node, NEWER);
  }, 400_000);
  afterAll(() => s?.destroy(), 60_000);

  it('refuses to skip a minor version, naming the skew rule, and changes nothing', async () => {
    await expect(s.lab.controllerCli(['cluster', 'upgrade', '--cluster', 'lab', '--to', '1.38.0'])).rejects.toThrow(
      /exited 2: .*--to: .*: 1\.38\.0 skips a minor version: Kubernetes is upgraded one minor version at a time/,
    );
    const status = (await s.lab.clusterStatus()) as Json;
    expect(status.upgrade).toBeUndefined();
    expect(status.cluster.kubernetesVersion).toBe(OLDER.version);
  });

  it('upgrades the control plane with kubeadm upgrade apply, then the worker, which resumes after a SIGKILL in its kubeadm step', async () => {
    await s.lab.controllerCli(['cluster', 'upgrade', '--cluster', 'lab', '--to', NEWER.version]);
    // Both nodes run `pke-agent upgrade` at once; the controller gives them their turns one after the other.
    const m1 = s.runUntil(s.node('m1'), ['upgrade', '--json'], () => false);
    const w1 = await s.runUntil(
      s.node('w1'),
      ['upgrade', '--json'],
      (line) => line.event === 'phase.start' && line.phase === 'upgrade-kubeadm',
    );
    expect(w1.matched).toBe(true);
    await s.killAgent(s.node('w1'));
    expect(await (await m1).done).toBe(0);
    const rerun = await s.runUntil(s.node('w1'), ['upgrade', '--json'], () => false);
    expect(await rerun.done).toBe(0);

    const nodes = (await kubectlJson('get', 'nodes')).items as Json[];
    for (const node of nodes) {
      expect(node.status.nodeInfo.kubeletVersion).toBe(`v${NEWER.version}`);
      expect(node.status.conditions.find((c: Json) => c.type === 'Ready')?.status).toBe('True');
      expect(node.spec.unschedulable).toBeUndefined();
    }
    const apiserver = await kubectlJson('get', 'pod', '-n', 'kube-system', 'kube-apiserver-m1');
    expect(apiserver.spec.containers[0].image).toBe(`registry.k8s.io/kube-apiserver:v${NEWER.version}`);
    const kubeadmConfig = await kubectlJson('get', 'configmap', '-n', 'kube-system', 'kubeadm-config');
    expect(kubeadmConfig.data.ClusterConfiguration).toContain(`kubernetesVersion: v${NEWER.version}`);

    // The worker's rerun went on from its kubeadm step: nothing before it ran twice.
    const journal = upgradeJournal('w1').phases as Json;
    expect(journal['upgrade-drain'].attempts).toBe(1);
    // Run again after the kill (and once more if kubeadm met a transient failure and the phase retried).
    expect(journal['upgrade-kubeadm'].attempts).toBeGreaterThanOrEqual(2);
    expect(Object.values(journal).every((phase: Json) => ['done', 'skipped'].includes(phase.state))).toBe(true);
    expect(s.logs.get('w1')?.some((line) => line.event === 'phase.resume' && line.phase === 'upgrade-kubeadm')).toBe(true);
    // The VIP stays where it is: a worker has no part in it, and the one control-plane node has no peer to hand it to.
    expect(journal['upgrade-vip-off'].state).toBe('skipped');
    expect(upgradeJournal('m1').phases['upgrade-vip-off'].output).toEqual({ released: false });

    const status = (await s.lab.clusterStatus()) as Json;
    expect(status.cluster.kubernetesVersion).toBe(NEWER.version);
    expect(status.upgrade.finishedAt).toBeDefined();
    expect(status.upgrade.nodes.map((n: Json) => [n.name, n.mode, n.state])).toEqual([
      ['m1', 'apply', 'upgraded'],
      ['w1', 'node', 'upgraded'],
    ]);
    // One node at a time: the worker got its turn after the control plane was done.
    const [cp, worker] = status.upgrade.nodes as Json[];
    expect(Date.parse(worker!.startedAt)).toBeGreaterThanOrEqual(Date.parse(cp!.upgradedAt));
  }, 1_200_000);
});
