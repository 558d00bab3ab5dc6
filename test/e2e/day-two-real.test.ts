import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileOnDisk } from '../../scripts/lab/vm.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import type { LabNode } from '../../scripts/lab/cluster.ts';
import { etcdMembers, namespaceSkipReason, probeVip, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * Removing and replacing nodes on the real tier: real kubeadm, kubelet, etcd and API servers in
 * lab VMs. The test acts out each node's pke-vip-sync timer (`pke-agent vip sync` every few
 * seconds instead of 30 s) and the operator's `controller node remove` and power switch.
 */
const binaries = realBinaries(NEWEST_RELEASE, ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'etcd', 'etcdctl']);
const skip = (await namespaceSkipReason()) ?? (binaries.available ? undefined : binaries.reason);
if (skip) console.warn(`real-tier day-two tests skipped: ${skip}`);

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON read back for assertions
type Json = Record<string, any>;

const WEB = (pause: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: default }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [{ name: pause, image: "registry.k8s.io/pause:${pause}", imagePullPolicy: Never }]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: web, namespace: default }
spec:
  minAvailable: 1
  selector: { matchLabels: { app: web } }
`;

describe.skipIf(skip)(`real Kubernetes v${NEWEST_RELEASE.version}: removing and replacing nodes`, () => {
  let s: ScenarioLab;
  let timers: Promise<void> | undefined;
  let stopTimers = false;
  const removed = new Set<string>();
  const remove = (name: string, ...flags: string[]) =>
    s.lab.controllerCli(['node', 'remove', '--cluster', s.lab.clusterName, '--name', name, ...flags]);
  const kubectl = (node: LabNode, ...args: string[]) => s.lab.kubectl(node, args);

  beforeAll(async () => {
    s = await scenarioLab('dtwo', { masters: 4, workers: 1, real: NEWEST_RELEASE });
    const exits = await Promise.all(['m1', 'm2', 'm3', 'w1'].map((name) => s.boot(s.node(name))));
    expect(exits).toEqual([0, 0, 0, 0]);
    // Each control-plane node's pke-vip-sync timer, a few seconds apart instead of 30 s.
    timers = (async () => {
      while (!stopTimers) {
        for (const node of s.lab.nodes.filter((n) => n.role === 'master' && n.vm && !removed.has(n.name))) {
          await s.lab.agentCommand(node, ['vip', 'sync', '--json']).catch(() => undefined);
        }
        await sleep(2000);
      }
    })();
  }, 900_000);

  afterAll(async () => {
    stopTimers = true;
    await timers;
    await s?.destroy();
  }, 120_000);

  it('drains the worker within its pods’ disruption budget: stops at the timeout naming the pod, --force finishes the removal', async () => {
    const m1 = s.node('m1');
    await m1.vm!.run('kubectl', ['--kubeconfig', '/etc/kubernetes/admin.conf', 'apply', '-f', '-'], {
      env: s.lab.nodeEnvironment(m1),
      input: WEB(NEWEST_RELEASE.pause),
    });
    await kubectl(m1, 'rollout', 'status', 'deployment/web', '--timeout=180s');
    const pods = JSON.parse(await kubectl(m1, 'get', 'pods', '-l', 'app=web', '-o', 'json')).items as Json[];
    expect(pods.map((p) => p.spec.nodeName)).toEqual(['w1', 'w1']);

    // The control plane is tainted and w1 cordoned: the first evicted pod's replacement has nowhere to run, so the budget holds the second.
    const first = await remove('w1', '--timeout', '20s').catch((error: unknown) => error);
    expect(String(first)).toMatch(
      /removing node w1 failed at step drain: draining node w1 timed out after 20000 ms: evictions still refused for default\/web-\S+ \(Cannot evict pod as it would violate the pod's disruption budget\.\); --force deletes them/,
    );
    const left = (JSON.parse(await kubectl(m1, 'get', 'pods', '-l', 'app=web', '-o', 'json')).items as Json[]).filter(
      (p) => p.spec.nodeName === 'w1',
    );
    expect(left).toHaveLength(1);
    const status = (await s.lab.clusterStatus()) as Json;
    expect(status.nodes.find((n: Json) => n.name === 'w1').removal).toMatchObject({ state: 'failed', step: 'drain' });

    expect((await remove('w1', '--force', '--timeout', '10s')).trim()).toBe('node w1: removed');
    removed.add('w1');
    const nodes = (JSON.parse(await kubectl(m1, 'get', 'nodes', '-o', 'json')).items as Json[]).map((n) => n.metadata.name).sort();
    expect(nodes).toEqual(['m1', 'm2', 'm3']);
    await s.lab.powerOff(s.node('w1'));
  }, 300_000);

  /** The node holding the VIP (the leader), removed live; and the two others, in order. */
  let holder: LabNode;
  let survivors: LabNode[];

  it('removes the VIP holder: the VIP moves first, etcd leadership and membership follow, the peers drop it', async () => {
    const found = await s.lab.vipHolder();
    if (!found) throw new Error('nobody holds the VIP');
    holder = found;
    survivors = ['m1', 'm2', 'm3'].filter((name) => name !== holder.name).map((name) => s.node(name));
    const [a, b] = survivors as [LabNode, LabNode];
    // /livez through the VIP from another host on the lab's network, as a client would see it.
    const prober = s.node('m4').host.namespace;
    const probe = probeVip(s, prober);
    const output = await remove(holder.name).catch(async (error: unknown) => {
      await probe.stop();
      throw error;
    });
    const { probes, failed } = await probe.stop();
    removed.add(holder.name);
    console.log(`VIP /livez probes during the removal of the VIP holder ${holder.name}: ${failed} of ${probes} failed`);
    expect(output.trim()).toBe(`node ${holder.name}: removed`);
    expect([a.name, b.name]).toContain((await s.lab.vipHolder())?.name);

    const members = await etcdMembers(s, a);
    expect(members.map((m) => m.name).sort()).toEqual([a.name, b.name]);
    const nodes = (JSON.parse(await kubectl(a, 'get', 'nodes', '-o', 'json')).items as Json[]).map((n) => n.metadata.name).sort();
    expect(nodes).toEqual([a.name, b.name]);
    const status = (await s.lab.clusterStatus()) as Json;
    const gone = status.nodes.find((n: Json) => n.name === holder.name);
    expect(gone.state).toBe('removed');
    expect(gone.removal.steps.find((step: Json) => step.name === 'release-vip').state).toBe('done');
    for (const survivor of [a, b]) {
      const conf = readFileSync(fileOnDisk(survivor.root, '/etc/keepalived/keepalived.conf'), 'utf8');
      expect(conf).not.toContain(`    ${holder.host.ip}\n`);
    }
    // The controller destroys a VM it provisioned; this one the operator powers off.
    await s.lab.powerOff(holder);
    // A failed probe lasts at most the takeover: keepalived's priority-0 advert hands the VIP over in well under a second.
    expect(failed).toBeLessThanOrEqual(4);
  }, 400_000);

  it('replaces it: a new control-plane node joins through the join slot as a voting etcd member', async () => {
    expect(await s.boot(s.node('m4'))).toBe(0);
    const members = await etcdMembers(s, survivors[0]!);
    expect(members.map((m) => m.name).sort()).toEqual([...survivors.map((n) => n.name), 'm4'].sort());
    expect(members.every((m) => !m.isLearner)).toBe(true);
  }, 600_000);

  it('removes a dead control-plane node from the survivors', async () => {
    const [kept, dead] = survivors as [LabNode, LabNode];
    await s.lab.powerOff(dead);
    expect((await remove(dead.name)).trim()).toBe(`node ${dead.name}: removed`);
    removed.add(dead.name);
    const status = (await s.lab.clusterStatus()) as Json;
    expect(status.nodes.find((n: Json) => n.name === dead.name).removal).toMatchObject({ state: 'done', dead: true });
    expect((await etcdMembers(s, kept)).map((m) => m.name).sort()).toEqual([kept.name, 'm4'].sort());
  }, 300_000);

  it('refuses to remove a control-plane node when etcd would lose quorum, naming the rule', async () => {
    const kept = survivors[0]!;
    await s.lab.powerOff(s.node('m4'));
    const refused = await remove(kept.name).catch((error: unknown) => error);
    // The member left alone counts as healthy only while it still knows a leader (its election timeout, about a second).
    const rule = 'etcd needs a majority of its voting members healthy: quorum of N = floor(N/2)+1';
    expect([
      `refused: etcd has 1 healthy of 2 voting members (${kept.name}), below its quorum of 2: it cannot commit a member removal (${rule})`,
      `refused: etcd has 0 healthy of 2 voting members (none), below its quorum of 2: it cannot commit a member removal (${rule})`,
    ]).toContain(/refused: [^"]*\)/.exec(String(refused))?.[0]);
    const status = (await s.lab.clusterStatus()) as Json;
    expect(status.nodes.find((n: Json) => n.name === kept.name).removal).toBeUndefined();
  }, 120_000);
});
