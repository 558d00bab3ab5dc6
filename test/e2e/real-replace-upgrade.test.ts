import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { fileOnDisk } from '../../scripts/lab/vm.ts';
import { KUBERNETES_RELEASES, NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import type { LabNode } from '../../scripts/lab/cluster.ts';
import { etcdMembers, namespaceSkipReason, probeVip, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * An upgrade by rolling replacement with real kubeadm, kubelet, etcd and control plane: m1 runs
 * the older built release; kube-system/kubeadm-config is set to the newer version; m2, cloned
 * from a template of the newer release, joins as a control-plane node (kubeadm join deploys the
 * static pods of the version the ConfigMap names); then m1 is removed with `controller node
 * remove`. The test acts out the control-plane nodes' pke-vip-sync timer, as day-two-real does.
 */
const OLDER = KUBERNETES_RELEASES.find((release) => release.version !== NEWEST_RELEASE.version)!;
const NEWER = NEWEST_RELEASE;
const needed = ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd', 'etcdctl'] as const;
const missing = [realBinaries(OLDER, needed), realBinaries(NEWER, needed)].find((b) => !b.available);
const skip = (await namespaceSkipReason()) ?? (missing && !missing.available ? missing.reason : undefined);
if (skip) console.warn(`real-tier replacement upgrade tests skipped: ${skip}`);

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON read back for assertions
type Json = Record<string, any>;

describe.skipIf(skip)(`real Kubernetes upgrade v${OLDER.version} -> v${NEWER.version} by replacing the control-plane node`, () => {
  let s: ScenarioLab;
  let timers: Promise<void> | undefined;
  let stopTimers = false;
  /** The nodes whose pke-vip-sync timer runs: bootstrapped and not removed. */
  const syncing = new Set<string>();
  const kubectlJson = async (node: LabNode, ...args: string[]): Promise<Json> =>
    JSON.parse(await s.lab.kubectl(node, [...args, '-o', 'json']));

  /** A static pod's mirror pod, which the kubelet posts at its own pace once it runs the pod (up to a minute here). */
  const mirrorPod = async (node: LabNode, name: string): Promise<Json> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await kubectlJson(node, 'get', 'pod', '-n', 'kube-system', name);
      } catch (error) {
        if (attempt >= 60 || !String(error).includes('NotFound')) throw error;
        await sleep(1000);
      }
    }
  };

  beforeAll(async () => {
    s = await scenarioLab('rrep', { masters: 2, workers: 0, real: OLDER, nodeReleases: new Map([['m2', NEWER]]) });
    expect(await s.boot(s.node('m1'))).toBe(0);
    syncing.add('m1');
    timers = (async () => {
      while (!stopTimers) {
        for (const name of syncing) await s.lab.agentCommand(s.node(name), ['vip', 'sync', '--json']).catch(() => undefined);
        await sleep(2000);
      }
    })();
  }, 600_000);

  afterAll(async () => {
    stopTimers = true;
    await timers;
    await s?.destroy();
  }, 120_000);

  // kubeadm join runs its KubeletVersion check against the control-plane version only on `kubeadm init`
  // (InitNodeChecks skips addCommonChecks for a secondary control plane; the join's own checks pass it
  // an empty version): what stops the newer kubelet here is that the join would deploy the static pods
  // of the version kubeadm-config names, whose images the newer template does not carry (a site that
  // reaches registry.k8s.io would pull them and join the newer kubelet to the older control plane).
  it(`refuses m2's join while kubeadm-config names v${OLDER.version}: its images are not on the newer template`, async () => {
    expect(await s.boot(s.node('m2'))).not.toBe(0);
    const lines = s.logs.get('m2') ?? [];
    const failed = lines.findLast((line) => line.event === 'phase.failed' && line.phase === 'kube-join');
    // The first failed check is named, and the join is not tried again: a preflight check is about this node.
    expect(failed?.error).toMatch(
      new RegExp(
        `^kubeadm join --config \\S+ exited 1: error: error execution phase preflight: preflight checks failed: \\[ERROR ImagePull\\]: failed to pull image registry\\.k8s\\.io/kube-apiserver:v${OLDER.version.replaceAll('.', '\\.')}: .* \\(and 2 more\\)$`,
      ),
    );
    expect(lines.filter((line) => line.event === 'phase.failed' && line.phase === 'kube-join')).toHaveLength(1);
    const fatal = lines.filter((line) => line.event === 'kubeadm.output' && /\[ERROR /.test(String(line.line)));
    const refused = new Set(
      fatal.map((line) => /\[ERROR (\w+)\]: failed to pull image (\S+):/.exec(String(line.line))?.slice(1).join(' ')),
    );
    console.log(`m2's join refused (${fatal.length} fatal errors in all attempts), first: ${String(fatal[0]?.line)}`);
    expect([...refused].sort()).toEqual(
      ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].map((name) => `ImagePull registry.k8s.io/${name}:v${OLDER.version}`),
    );
    const nodes = ((await kubectlJson(s.node('m1'), 'get', 'nodes')).items as Json[]).map((n) => n.metadata.name);
    expect(nodes).toEqual(['m1']);
  }, 300_000);

  it(`sets kubeadm-config's kubernetesVersion to v${NEWER.version}, keeping the rest of the ClusterConfiguration`, async () => {
    const m1 = s.node('m1');
    const before = await kubectlJson(m1, 'get', 'configmap', '-n', 'kube-system', 'kubeadm-config');
    const cluster = parseDocument(before.data.ClusterConfiguration as string);
    expect(cluster.get('kubernetesVersion')).toBe(`v${OLDER.version}`);
    cluster.set('kubernetesVersion', `v${NEWER.version}`);
    const replaced = { ...before, data: { ...before.data, ClusterConfiguration: cluster.toString() } };
    await m1.vm!.run('kubectl', ['--kubeconfig', '/etc/kubernetes/admin.conf', 'replace', '-f', '-'], {
      env: s.lab.nodeEnvironment(m1),
      input: JSON.stringify(replaced),
    });

    const after = await kubectlJson(m1, 'get', 'configmap', '-n', 'kube-system', 'kubeadm-config');
    expect(parse(after.data.ClusterConfiguration)).toEqual({
      ...parse(before.data.ClusterConfiguration),
      kubernetesVersion: `v${NEWER.version}`,
    });
  }, 60_000);

  it(`joins m2 on its bootstrap's rerun, as a control-plane node running v${NEWER.version}`, async () => {
    const m2 = s.node('m2');
    const started = Date.now();
    expect(await s.boot(m2)).toBe(0);
    const joinMs = s.logs.get('m2')?.findLast((line) => line.event === 'phase.done' && line.phase === 'kube-join')?.ms;
    console.log(
      `m2: bootstrap ${Math.round((Date.now() - started) / 1000)} s, of which kubeadm join (kube-join) ${Math.round(Number(joinMs) / 1000)} s`,
    );
    syncing.add('m2');

    const nodes = new Map(((await kubectlJson(m2, 'get', 'nodes')).items as Json[]).map((n) => [n.metadata.name as string, n]));
    expect([...nodes.keys()].sort()).toEqual(['m1', 'm2']);
    expect(nodes.get('m1')?.status.nodeInfo.kubeletVersion).toBe(`v${OLDER.version}`);
    const node = nodes.get('m2')!;
    expect(node.status.nodeInfo.kubeletVersion).toBe(`v${NEWER.version}`);
    expect(node.status.conditions.find((c: Json) => c.type === 'Ready')?.status).toBe('True');
    expect(node.metadata.labels).toHaveProperty('node-role.kubernetes.io/control-plane');

    const manifest = parse(readFileSync(fileOnDisk(m2.root, '/etc/kubernetes/manifests/kube-apiserver.yaml'), 'utf8')) as Json;
    expect(manifest.spec.containers[0].image).toBe(`registry.k8s.io/kube-apiserver:v${NEWER.version}`);
    const apiserver = await mirrorPod(m2, 'kube-apiserver-m2');
    expect(apiserver.spec.containers[0].image).toBe(`registry.k8s.io/kube-apiserver:v${NEWER.version}`);
    const etcd = await mirrorPod(m2, 'etcd-m2');
    expect(etcd.spec.containers[0].image).toBe(`registry.k8s.io/etcd:${NEWER.etcd}-0`);
    // What m2's API server itself answers, not m1's behind the VIP.
    const version = JSON.parse(await s.lab.kubectl(m2, ['--server', `https://${m2.host.ip}:6443`, 'version', '-o', 'json'])) as Json;
    expect(version.serverVersion.gitVersion).toBe(`v${NEWER.version}`);

    const members = await etcdMembers(s, m2);
    expect(members.map((m) => m.name).sort()).toEqual(['m1', 'm2']);
    expect(members.every((m) => !m.isLearner)).toBe(true);
  }, 900_000);

  it('removes m1 with controller node remove: m2 alone answers through the VIP', async () => {
    const [m1, m2] = [s.node('m1'), s.node('m2')];
    const probe = probeVip(s, s.lab.network.hosts.find((h) => h.name === 'ctl')!.namespace);
    const started = Date.now();
    const output = await s.lab.controllerCli(['node', 'remove', '--cluster', s.lab.clusterName, '--name', 'm1']);
    const removalMs = Date.now() - started;
    expect(output.trim()).toBe('node m1: removed');
    syncing.delete('m1');
    await s.lab.powerOff(m1);
    // The hand-over itself is at once (m1's priority-0 advert); the outage clients see comes after, when
    // m2's vip sync drops its last unicast peer: keepalived's reload switches the instance to multicast
    // and restarts it in BACKUP (init), so the VIP is gone for its master-down interval (~3-4 s).
    // A bounded wait (10 s) until m2 holds the VIP and /livez answers through it.
    for (let i = 0; i < 40 && ((await s.lab.vipHolder())?.name !== 'm2' || probe.lastOk() < Date.now() - 1000); i++) await sleep(250);
    const seen = await probe.stop();
    console.log(
      `m1: controller node remove took ${Math.round(removalMs / 1000)} s; VIP /livez probes from the start of the removal: ${seen.failed} of ${seen.probes} failed, the longest outage ${(seen.longestOutageMs / 1000).toFixed(1)} s`,
    );
    const steps = ((await s.lab.clusterStatus()) as Json).nodes.find((n: Json) => n.name === 'm1').removal.steps as Json[];
    console.log(
      `VIP outages ${seen.outages.join(', ')}; removal steps ${steps.map((step) => `${step.name} ${step.state} ${step.at}`).join(', ')}`,
    );
    expect((await s.lab.vipHolder())?.name).toBe('m2');
    expect((await etcdMembers(s, m2)).map((m) => m.name)).toEqual(['m2']);
    // admin.conf names the control-plane endpoint: this goes through the VIP.
    const adminConf = parse(readFileSync(fileOnDisk(m2.root, '/etc/kubernetes/admin.conf'), 'utf8')) as Json;
    expect(adminConf.clusters[0].cluster.server).toBe(`https://${s.lab.network.vip}:6443`);
    const nodes = (await kubectlJson(m2, 'get', 'nodes')).items as Json[];
    expect(nodes.map((n) => [n.metadata.name, n.status.nodeInfo.kubeletVersion])).toEqual([['m2', `v${NEWER.version}`]]);
    const version = JSON.parse(await s.lab.kubectl(m2, ['version', '-o', 'json'])) as Json;
    expect(version.serverVersion.gitVersion).toBe(`v${NEWER.version}`);

    const status = (await s.lab.clusterStatus()) as Json;
    expect(status.nodes.find((n: Json) => n.name === 'm1').state).toBe('removed');
  }, 600_000);
});
