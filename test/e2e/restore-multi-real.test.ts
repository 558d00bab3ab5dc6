import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesNamed } from '../../scripts/lab/vm.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import type { LabNode } from '../../scripts/lab/cluster.ts';
import { etcdctl, etcdMembers, journalOf, namespaceSkipReason, runInVm, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * The README's restore of a control plane of two nodes, on the real tier (real kubeadm, kubelet,
 * etcd and API servers in lab VMs), step by step as an operator follows it: the other node's
 * static pods stopped, `pke-agent restore` on one of them, then `pke-agent restore --rejoin` on the
 * other, the node that ran kubeadm init.
 */
const binaries = realBinaries(NEWEST_RELEASE, ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'etcd', 'etcdctl', 'etcdutl']);
const skip = (await namespaceSkipReason()) ?? (binaries.available ? undefined : binaries.reason);
if (skip) console.warn(`real-tier restore tests skipped: ${skip}`);

describe.skipIf(skip)(`real Kubernetes v${NEWEST_RELEASE.version}: a two-node control plane restored from a snapshot`, () => {
  let s: ScenarioLab;
  const m1 = () => s.node('m1');
  const m2 = () => s.node('m2');
  /** A command in the node's VM that must succeed; its stdout. */
  const run = async (node: LabNode, argv: string[]) => {
    const result = await runInVm(s, node, argv);
    expect(result.exitCode, `${argv.join(' ')} on ${node.name}: ${result.stderr.slice(-3000)}`).toBe(0);
    return result.stdout;
  };
  const agent = (node: LabNode, args: string[]) => run(node, [s.lab.options.executable, ...args, '--json']);
  /** kubectl with the node's admin.conf, its server the VIP whatever the file says. */
  const kubectl = (node: LabNode, args: string[]) =>
    run(node, ['kubectl', '--kubeconfig', '/etc/kubernetes/admin.conf', '--server', `https://${s.lab.network.vip}:6443`, ...args]);

  beforeAll(async () => {
    s = await scenarioLab('rstr', { masters: 2, workers: 1, real: NEWEST_RELEASE });
    expect(await s.boot(m1())).toBe(0);
    expect(await Promise.all([s.boot(m2()), s.boot(s.node('w1'))])).toEqual([0, 0]);
  }, 900_000);
  afterAll(() => s?.destroy(), 120_000);

  it('brings back what the snapshot held, drops what came after, and m1 rejoins etcd and the control plane', async () => {
    expect((await etcdMembers(s, m1())).map((m) => m.name).sort()).toEqual(['m1', 'm2']);
    await kubectl(m1(), ['create', 'configmap', 'before-snapshot', '-n', 'default', '--from-literal=k=v']);
    const { request } = JSON.parse(await s.lab.controllerCli(['cluster', 'backup', '--cluster', s.lab.clusterName, '--json'])) as {
      request: string;
    };
    // pke-etcd-backup.timer's run on m1 (the lab has no timers).
    const stored = JSON.parse(await agent(m1(), ['etcd', 'backup'])) as { id: string; file: string; revision: number };
    expect(stored.id).toBe(request);
    await kubectl(m1(), ['create', 'configmap', 'after-snapshot', '-n', 'default', '--from-literal=k=v']);

    // The restore on m2, the rejoin on m1: the node that ran kubeadm init, whose bootstrap never joined.
    expect(journalOf(m1()).phases['kube-join']?.state).toBe('skipped');

    // README: first stop the static pods of the other control-plane nodes, and wait until they are gone.
    await run(m1(), ['sh', '-c', 'mkdir -p /root/manifests && mv /etc/kubernetes/manifests/*.yaml /root/manifests/']);
    for (let i = 0; ['etcd', 'kube-apiserver'].some((name) => processesNamed(m1().vm!.spec.cgroup, name).length > 0); i++) {
      if (i > 120) throw new Error('the kubelet on m1 did not stop its static pods within 2 minutes');
      await sleep(1000);
    }

    // README: copy the snapshot to one control-plane node and restore there.
    await run(m2(), ['cp', stored.file, '/root/snapshot.db']);
    const restoreStarted = Date.now();
    const restored = JSON.parse(await agent(m2(), ['restore', '--snapshot', '/root/snapshot.db'])) as {
      restored: boolean;
      revision: number;
    };
    const restoreEnded = Date.now();
    const restoreSeconds = (restoreEnded - restoreStarted) / 1000;
    expect(restored).toMatchObject({ restored: true, revision: stored.revision });

    // README: then on each other one, one at a time.
    const rejoinStarted = Date.now();
    expect(JSON.parse(await agent(m1(), ['restore', '--rejoin']))).toEqual({ rejoined: true });
    const rejoinSeconds = (Date.now() - rejoinStarted) / 1000;
    console.log(`restore on m2: ${restoreSeconds.toFixed(1)} s; rejoin of m1: ${rejoinSeconds.toFixed(1)} s`);

    for (const node of [m1(), m2()]) {
      const configmaps = JSON.parse(await kubectl(node, ['get', 'configmaps', '-n', 'default', '-o', 'json'])) as {
        items: { metadata: { name: string } }[];
      };
      const names = configmaps.items.map((c) => c.metadata.name);
      expect(names).toContain('before-snapshot');
      expect(names).not.toContain('after-snapshot');

      const members = await etcdMembers(s, node);
      expect(members.map((m) => ({ name: m.name, learner: m.isLearner ?? false })).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
        { name: 'm1', learner: false },
        { name: 'm2', learner: false },
      ]);
      const health = await etcdctl(s, node, ['endpoint', 'health', '--cluster', '-w', 'json']);
      expect(health.exitCode, health.stderr).toBe(0);
      expect((JSON.parse(health.stdout) as { health: boolean }[]).map((h) => h.health)).toEqual([true, true]);
    }

    for (let i = 0; ; i++) {
      const nodes = JSON.parse(await kubectl(m1(), ['get', 'nodes', '-o', 'json'])) as {
        items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[];
      };
      const ready = nodes.items.map((n) => ({
        name: n.metadata.name,
        ready: n.status.conditions.find((c) => c.type === 'Ready')?.status === 'True',
      }));
      // The worker's kubelet, through the VIP all along, needs nothing done.
      if (ready.length === 3 && ready.every((n) => n.ready)) {
        expect(ready.map((n) => n.name).sort()).toEqual(['m1', 'm2', 'w1']);
        break;
      }
      if (i > 180) throw new Error(`nodes not Ready 3 minutes after the rejoin: ${JSON.stringify(ready)}`);
      await sleep(1000);
    }
    // Ready as the restored cluster sees it, not as the snapshot had it: each kubelet renews its lease there.
    for (const name of ['m1', 'm2', 'w1']) {
      for (let i = 0; ; i++) {
        const lease = await runInVm(s, m2(), [
          'kubectl',
          '--kubeconfig',
          '/etc/kubernetes/admin.conf',
          '--server',
          `https://${s.lab.network.vip}:6443`,
          'get',
          'lease',
          '-n',
          'kube-node-lease',
          name,
          '-o',
          'jsonpath={.spec.renewTime}',
        ]);
        if (lease.exitCode === 0 && Date.parse(lease.stdout) > restoreEnded) break;
        if (i > 90) throw new Error(`${name}'s kubelet has not renewed its lease since the restore: ${lease.stdout}${lease.stderr}`);
        await sleep(1000);
      }
    }
    // m1's Node was deleted and registered again by the join: the control-plane taint is back.
    const taints = JSON.parse(await kubectl(m2(), ['get', 'node', 'm1', '-o', 'jsonpath={.spec.taints}'])) as { key: string }[];
    expect(taints.map((t) => t.key)).toContain('node-role.kubernetes.io/control-plane');
  }, 1_200_000);
});
