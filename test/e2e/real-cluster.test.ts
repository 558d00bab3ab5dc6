import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { caCertHash } from '../../agent/controller/clusters/pki.ts';
import { CommandError } from '../../agent/core/errors.ts';
import { renderJoinConfig } from '../../agent/kube/kubeadm-config.ts';
import { PKI_FILES } from '../../agent/protocol/api.ts';
import { isTransientKubeadmError } from '../../agent/kube/kubeadm.ts';
import { listNamespaces } from '../../scripts/lab/network.ts';
import { fileOnDisk } from '../../scripts/lab/vm.ts';
import { archivesFor } from '../../scripts/kubernetes/images.ts';
import { NEWEST_RELEASE } from '../../scripts/kubernetes/releases.ts';
import { realBinaries } from '../../scripts/kubernetes/real-binaries.ts';
import { agentConfig } from '../helpers/standins.ts';
import { etcdctl, etcdMembers, journalOf, namespaceSkipReason, runInVm, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * The real tier: clusters formed by the agent with real kubeadm, kubelet, containerd, etcd and
 * control plane, built from their Go modules (scripts/kubernetes/build.ts), in lab VMs with their
 * own network, mount, UTS namespaces and cgroups. Only systemctl stands in (no systemd here).
 */
const binaries = realBinaries(NEWEST_RELEASE, ['kubeadm', 'kubelet', 'kubectl', 'kube-apiserver', 'etcd']);
const skip = (await namespaceSkipReason()) ?? (binaries.available ? undefined : binaries.reason);
if (skip) console.warn(`real-tier e2e tests skipped: ${skip}`);

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON read back for assertions, nested fields read without casts
type Json = Record<string, any>;

describe.skipIf(skip)(`real Kubernetes v${NEWEST_RELEASE.version}: 1 control-plane and 1 worker node`, () => {
  let s: ScenarioLab;
  let exitCodes: number[];
  const kubectlJson = async (...args: string[]): Promise<Json> => JSON.parse(await s.lab.kubectl(s.node('m1'), [...args, '-o', 'json']));

  beforeAll(async () => {
    s = await scenarioLab('real1', { masters: 1, workers: 2, real: NEWEST_RELEASE });
    exitCodes = await Promise.all([s.boot(s.node('m1')), s.boot(s.node('w1'))]);
  }, 300_000);
  afterAll(() => s?.destroy(), 60_000);

  it('brings both nodes to Ready in the real API, at the built version', async () => {
    expect(exitCodes).toEqual([0, 0]);
    const nodes = (await kubectlJson('get', 'nodes')).items as Json[];
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(['m1', 'w1']);
    for (const node of nodes) {
      expect(node.status.nodeInfo.kubeletVersion).toBe(`v${NEWEST_RELEASE.version}`);
      expect(node.status.conditions.find((c: Json) => c.type === 'Ready')?.status).toBe('True');
      expect(node.status.addresses).toContainEqual({ type: 'InternalIP', address: s.node(node.metadata.name).host.ip });
    }
    const m1 = nodes.find((n) => n.metadata.name === 'm1')!;
    expect(m1.spec.taints).toContainEqual({ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' });
  });

  it('runs the control plane as static pods of the real kubelet', async () => {
    const pods = ((await kubectlJson('get', 'pods', '-n', 'kube-system')).items as Json[]).map((p) => p.metadata.name).sort();
    expect(pods).toEqual(['etcd-m1', 'kube-apiserver-m1', 'kube-controller-manager-m1', 'kube-scheduler-m1']);
  });

  it('joined the worker with a bootstrap token the controller minted through the real API, signed into cluster-info by the real signer', async () => {
    const join = journalOf(s.node('w1')).phases['kube-join'];
    expect(join?.state).toBe('done');
    const tokens = (
      (await kubectlJson('get', 'secrets', '-n', 'kube-system', '--field-selector', 'type=bootstrap.kubernetes.io/token')).items as Json[]
    ).map((t) => Buffer.from(t.data['token-id'], 'base64').toString());
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    const clusterInfo = (await kubectlJson('get', 'configmap', 'cluster-info', '-n', 'kube-public')).data as Record<string, string>;
    for (const id of tokens) expect(clusterInfo).toHaveProperty(`jws-kubeconfig-${id}`);
    // The worker's kubelet got its client certificate through a CSR that the real controller-manager approved and signed.
    const csrs = (await kubectlJson('get', 'csr')).items as Json[];
    const workerCsr = csrs.find(
      (c) => c.spec.signerName === 'kubernetes.io/kube-apiserver-client-kubelet' && /^system:bootstrap:/.test(c.spec.username),
    );
    expect(workerCsr?.status.conditions?.map((c: Json) => c.type)).toContain('Approved');
    expect(workerCsr?.status.certificate).toBeTruthy();
  });

  it("classifies real kubeadm's answer to an unknown token as transient (the stand-in prints the same line)", async () => {
    const result = await kubeadmJoinOnW2(s, 'zzzzzz.0123456789abcdef', clusterCaPin(s));
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(
      `couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "zzzzzz"`,
    );
    expect(isTransientKubeadmError(new CommandError('kubeadm join', result.exitCode, result.stderr))).toBe(true);
  }, 120_000);

  it("fails a join whose CA pin is not the cluster's for good, with the line the stand-in prints", async () => {
    const token = (
      await runInVm(s, s.node('m1'), ['kubeadm', 'token', 'create', '--kubeconfig', '/etc/kubernetes/admin.conf', '--ttl', '10m'])
    ).stdout.trim();
    const wrongPin = `sha256:${'0'.repeat(64)}`;
    const result = await kubeadmJoinOnW2(s, token, wrongPin);
    expect(result.exitCode).toBe(1);
    // It names the key it found, the one the join should have pinned.
    expect(result.stderr).toContain(
      `couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "${clusterCaPin(s)}" are pinned`,
    );
    expect(isTransientKubeadmError(new CommandError('kubeadm join', result.exitCode, result.stderr))).toBe(false);
  }, 120_000);

  it("fails a control-plane join blocked by etcd's one-learner limit with the line the agent retries on", async () => {
    // A learner that never starts holds etcd's one learner place, as a concurrent join would.
    const added = await etcdctl(s, s.node('m1'), ['member', 'add', 'stuck', '--learner', '--peer-urls', 'https://198.51.100.99:2380']);
    expect(added.exitCode, added.stderr).toBe(0);
    const token = (
      await runInVm(s, s.node('m1'), ['kubeadm', 'token', 'create', '--kubeconfig', '/etc/kubernetes/admin.conf', '--ttl', '10m'])
    ).stdout.trim();
    // The shared CA files the certs phase would have put on a control-plane node.
    const copy = PKI_FILES.map(
      (file) => `mkdir -p $(dirname /etc/kubernetes/pki/${file}) && cat > /etc/kubernetes/pki/${file} <<'EOF'\n${readOnM1(s, file)}EOF`,
    );
    // w2 was made a worker: it gets the control-plane images too.
    const images = archivesFor(NEWEST_RELEASE, 'master').map((archive) => `ctr -n k8s.io images import ${archive} >/dev/null`);
    await runInVm(s, s.node('w2'), ['sh', '-c', [...copy, ...images].join('\n')]);
    const result = await kubeadmJoinOnW2(s, token, clusterCaPin(s), { controlPlane: true });
    expect(result.exitCode).toBe(1);
    // The line test/kube/kubeadm.test.ts classifies, and the one kubeadm's stand-in is told to print in the join tests.
    expect(result.stderr).toContain(
      'error execution phase etcd-join: error creating local etcd static pod manifest file: etcdserver: too many learner members in cluster',
    );
    expect(isTransientKubeadmError(new CommandError('kubeadm join', result.exitCode, result.stderr))).toBe(true);
  }, 180_000);

  it('leaves nothing behind: no process of a VM, no cgroup, no namespace', async () => {
    await s.destroy();
    expect(await listNamespaces(s.lab.options.prefix)).toEqual([]);
    expect(readdirSync('/sys/fs/cgroup/pids').filter((name) => name.startsWith(s.lab.options.prefix))).toEqual([]);
    expect(existsSync(s.lab.options.workDir)).toBe(false);
  }, 60_000);
});

describe.skipIf(skip)(
  `real Kubernetes v${NEWEST_RELEASE.version}: 3 control-plane nodes, the leader's power cut in the middle of kubeadm init`,
  () => {
    let s: ScenarioLab;
    afterAll(() => s?.destroy(), 60_000);

    it('has another node take the lease and init, the third join, and the old leader reset its half-done init and join when it is back', async () => {
      s = await scenarioLab('real3', { masters: 3, workers: 0, real: NEWEST_RELEASE, leaseTtl: '5s' });
      const initStarted = await new Promise<string>((resolve) => {
        for (const node of s.lab.nodes) {
          void s
            .bootUntil(node, (line) => line.event === 'phase.start' && line.phase === 'kube-init')
            .then((run) => {
              if (run.matched) resolve(node.name);
            });
        }
      });
      const oldLeader = s.node(initStarted);
      // Long enough for kubeadm to have written certificates, kubeconfigs and static pods.
      await new Promise((r) => setTimeout(r, 4000));
      await s.powerCut(oldLeader);

      const others = s.lab.nodes.filter((n) => n !== oldLeader);
      expect(await Promise.all(others.map((n) => n.bootstrap!.then((r) => r.exitCode)))).toEqual([0, 0]);
      const status = (await s.lab.clusterStatus()) as { leader: { holder?: string; epoch: number; initialized: boolean } };
      expect(status.leader.initialized).toBe(true);
      expect(status.leader.holder).not.toBe(oldLeader.name);
      expect(status.leader.epoch).toBeGreaterThanOrEqual(2);

      await s.lab.powerOn(oldLeader);
      expect(await s.boot(oldLeader)).toBe(0);
      const logs = s.logs.get(oldLeader.name) ?? [];
      expect(logs.some((l) => l.event === 'kube-init.reset')).toBe(true);
      expect(journalOf(oldLeader).phases['kube-join']?.state).toBe('done');

      const survivor = others[0]!;
      const nodes = JSON.parse(await s.lab.kubectl(survivor, ['get', 'nodes', '-o', 'json'])).items as Json[];
      expect(nodes.map((n) => n.metadata.name).sort()).toEqual(['m1', 'm2', 'm3']);
      expect(nodes.every((n) => n.status.conditions.find((c: Json) => c.type === 'Ready')?.status === 'True')).toBe(true);
      // One etcd cluster of three voting members: the old leader's half-made one is gone.
      const members = await etcdMembers(s, survivor);
      expect(members.map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
      expect(members.every((m) => !m.isLearner)).toBe(true);
    }, 600_000);
  },
);

/** The cluster CA's pin, as the controller hands it out, of the CA on m1's disk. */
function clusterCaPin(s: ScenarioLab): string {
  return caCertHash(readOnM1(s, 'ca.crt'));
}

/**
 * Real `kubeadm join` on w2 (a VM the agent never ran on) with the config the agent renders for
 * the lab's site, its timeouts cut to 10 s for discovery and each etcd call (kubeadm waits 5 and
 * 2 minutes by default before it gives up).
 */
async function kubeadmJoinOnW2(s: ScenarioLab, token: string, caHash: string, options: { controlPlane?: boolean } = {}) {
  const w2 = s.node('w2');
  const role = options.controlPlane ? 'master' : 'worker';
  const agent = agentConfig({
    kubernetes: { version: NEWEST_RELEASE.version, cgroupDriver: 'cgroupfs', allowCgroupV1: true },
    role,
    pool: role === 'master' ? 'control-plane' : 'workers',
  });
  const node = { nodeName: w2.name, primaryIp: w2.host.ip, interface: 'eth0', ips: [w2.host.ip] };
  const rendered = renderJoinConfig({
    config: agent,
    node,
    discovery: { endpoint: `${s.lab.network.vip}:6443`, token, caCertHash: caHash },
  });
  const join = parse(rendered) as { timeouts: Record<string, string> };
  join.timeouts = { ...join.timeouts, discovery: '10s', etcdAPICall: '10s' };
  const config = stringify(join);
  // What host-prep would have set; kubeadm's preflight checks it before discovery.
  const script = `echo 1 > /proc/sys/net/ipv4/ip_forward\ncat > /tmp/join.yaml <<'EOF'\n${config}EOF\nkubeadm join --config /tmp/join.yaml`;
  return runInVm(s, s.node('w2'), ['sh', '-c', script]);
}

/** A file of m1's /etc/kubernetes/pki, read from its disk. */
function readOnM1(s: ScenarioLab, file: string): string {
  return readFileSync(fileOnDisk(s.node('m1').root, `/etc/kubernetes/pki/${file}`), 'utf8');
}
