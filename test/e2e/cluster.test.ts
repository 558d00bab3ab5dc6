import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KUBEADM_JOIN_CONFIG } from '../../agent/kube/paths.ts';
import { journalOf, namespaceSkipReason, scenarioLab, type ScenarioLab } from './harness.ts';

/**
 * Whole clusters bootstrapped in network namespaces: the real controller and agent executable,
 * real keepalived and network; kubeadm, kubelet and the API server acted out by the stand-ins.
 */
const skip = await namespaceSkipReason();
if (skip) console.warn(`e2e cluster tests skipped: ${skip}`);

function kubeadmDocuments(file: string): Record<string, unknown>[] {
  return YAML.parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => doc.toJS() as Record<string, unknown>);
}

describe.skipIf(skip)('3 control-plane and 2 worker nodes, Kubernetes 1.31 (kubeadm v1beta4)', () => {
  let s: ScenarioLab;
  let exitCodes: number[];
  beforeAll(async () => {
    s = await scenarioLab('happy', { masters: 3, workers: 2, kubernetesVersion: '1.31.2' });
    exitCodes = await Promise.all(s.lab.nodes.map((node) => s.boot(node)));
  }, 300_000);
  afterAll(() => s?.destroy(), 60_000);

  it('brings every node to ready', async () => {
    expect(exitCodes).toEqual([0, 0, 0, 0, 0]);
    const status = (await s.lab.clusterStatus()) as {
      nodes: { name: string; readyAt?: string; lastError?: string }[];
      leader: { holder?: string; initialized: boolean };
    };
    expect(status.nodes.map((n) => n.name).sort()).toEqual(['m1', 'm2', 'm3', 'w1', 'w2']);
    expect(status.nodes.every((n) => n.readyAt)).toBe(true);
    expect(status.leader.initialized).toBe(true);
  });

  it('runs kubeadm init once, on the leader, and joins the others', () => {
    const inits = s.lab.nodes.flatMap((node) =>
      s
        .calls(node, 'kubeadm')
        .filter((c) => c.argv[0] === 'init')
        .map(() => node.name),
    );
    expect(inits).toHaveLength(1);
    const leader = inits[0]!;
    const leaderJournal = journalOf(s.node(leader));
    expect(leaderJournal.phases['kube-init']?.state).toBe('done');
    expect(leaderJournal.phases['kube-join']?.state).toBe('skipped');
    for (const node of s.lab.nodes.filter((n) => n.name !== leader)) {
      expect(s.calls(node, 'kubeadm').filter((c) => c.argv[0] === 'join').length, node.name).toBeGreaterThanOrEqual(1);
      expect(journalOf(node).phases['kube-join']?.state, node.name).toBe('done');
    }
  });

  it('installs the CNI from the baked-in bundle on the leader only, before its wait-ready', () => {
    const leader = s.lab.nodes.find((n) => s.calls(n, 'kubeadm').some((c) => c.argv[0] === 'init'))!;
    const journal = journalOf(leader);
    expect(journal.phases.addons?.state).toBe('done');
    expect(Date.parse(journal.phases.addons!.endedAt!)).toBeLessThanOrEqual(Date.parse(journal.phases['wait-ready']!.startedAt!));
    const kubectl = s.calls(leader, 'kubectl').map((c) => c.argv.join(' '));
    expect(kubectl.some((line) => line.includes('apply') && line.includes('/etc/kubernetes/pke/addons/calico/30-calico-node.yaml'))).toBe(
      true,
    );
    expect(kubectl).toContainEqual(expect.stringContaining('rollout status daemonset/calico-node'));
    for (const node of s.lab.nodes.filter((n) => n !== leader)) {
      expect(journalOf(node).phases.addons?.state, node.name).toBe('skipped');
      expect(
        s.calls(node, 'kubectl').some((c) => c.argv.includes('apply')),
        node.name,
      ).toBe(false);
    }
  });

  it('joins control-plane nodes one at a time', () => {
    const leader = s.lab.nodes.find((n) => s.calls(n, 'kubeadm').some((c) => c.argv[0] === 'init'))!;
    const joins = s.lab.nodes
      .filter((n) => n.role === 'master' && n !== leader)
      .map((n) => ({
        kubeadmStarted: Date.parse(s.calls(n, 'kubeadm').find((c) => c.argv[0] === 'join')!.time),
        phaseEnded: Date.parse(journalOf(n).phases['kube-join']!.endedAt!),
      }))
      .sort((a, b) => a.kubeadmStarted - b.kubeadmStarted);
    expect(joins).toHaveLength(2);
    // The second kubeadm join starts only after the first node's join is over (it frees the slot when it reports joined).
    expect(joins[1]!.kubeadmStarted).toBeGreaterThanOrEqual(joins[0]!.phaseEnded);
  });

  it('opens the joins when the leader reports its init done, not when the leader is ready', () => {
    const leader = s.lab.nodes.find((n) => s.calls(n, 'kubeadm').some((c) => c.argv[0] === 'init'))!;
    // A joiner writes its kubeadm config the moment the controller hands it a grant.
    const firstJoin = Math.min(
      ...s.lab.nodes.filter((n) => n !== leader).map((n) => statSync(path.join(n.root, KUBEADM_JOIN_CONFIG)).mtimeMs),
    );
    const leaderPhases = journalOf(leader).phases;
    expect(firstJoin).toBeGreaterThanOrEqual(Date.parse(leaderPhases['signal-joined']!.startedAt!));
    // Between the two, the leader still configures its VIP health check, installs the add-ons and waits for its kubelet.
    expect(firstJoin).toBeLessThan(Date.parse(leaderPhases['signal-ready']!.startedAt!));
  });

  it('renders kubeadm v1beta4 configs with the VIP endpoint, SANs and the join discovery', () => {
    const leader = s.lab.nodes.find((n) => s.calls(n, 'kubeadm').some((c) => c.argv[0] === 'init'))!;
    const init = kubeadmDocuments(path.join(leader.root, 'etc/kubernetes/pke/kubeadm-init.yaml'));
    expect(init.map((d) => `${d.apiVersion as string}/${d.kind as string}`)).toEqual(
      expect.arrayContaining(['kubeadm.k8s.io/v1beta4/InitConfiguration', 'kubeadm.k8s.io/v1beta4/ClusterConfiguration']),
    );
    const cluster = init.find((d) => d.kind === 'ClusterConfiguration') as {
      controlPlaneEndpoint: string;
      apiServer: { certSANs: string[] };
    };
    expect(cluster.controlPlaneEndpoint).toBe(`${s.lab.network.vip}:6443`);
    expect(cluster.apiServer.certSANs).toEqual(expect.arrayContaining([s.lab.network.vip, leader.host.ip]));

    const worker = s.node('w1');
    const join = kubeadmDocuments(path.join(worker.root, 'etc/kubernetes/pke/kubeadm-join.yaml'))[0] as {
      apiVersion: string;
      discovery: { bootstrapToken: { apiServerEndpoint: string; caCertHashes: string[] } };
      controlPlane?: unknown;
    };
    expect(join.apiVersion).toBe('kubeadm.k8s.io/v1beta4');
    expect(join.discovery.bootstrapToken.apiServerEndpoint).toBe(`${s.lab.network.vip}:6443`);
    expect(join.discovery.bootstrapToken.caCertHashes[0]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(join.controlPlane).toBeUndefined();
    const master = s.lab.nodes.find((n) => n.role === 'master' && n !== leader)!;
    const cpJoin = kubeadmDocuments(path.join(master.root, 'etc/kubernetes/pke/kubeadm-join.yaml'))[0] as {
      controlPlane?: { localAPIEndpoint: { advertiseAddress: string } };
    };
    expect(cpJoin.controlPlane?.localAPIEndpoint.advertiseAddress).toBe(master.host.ip);
  });

  it('puts the VIP on one control-plane node, with real keepalived', async () => {
    const holder = await s.lab.vipHolder();
    expect(holder?.role).toBe('master');
  });

  it('shows every phase, its duration, the VIP holder and certificate expiry in `pke-agent status`', async () => {
    const holder = (await s.lab.vipHolder())!;
    const report = (await s.lab.nodeStatus(holder, true)) as {
      phases: { name: string; state: string; durationMs?: number }[];
      vipHere: boolean;
      files: { path: string; expires?: string }[];
      probes: Record<string, { ok: boolean }>;
    };
    expect(report.phases.map((p) => p.name)).toEqual([
      'preflight',
      'register',
      'host-prep',
      'certs',
      'elect',
      'kube-init',
      'kube-join',
      'signal-joined',
      'vip',
      'addons',
      'wait-ready',
      'signal-ready',
    ]);
    expect(report.phases.every((p) => p.state === 'done' || p.state === 'skipped')).toBe(true);
    expect(report.phases.filter((p) => p.state === 'done').every((p) => typeof p.durationMs === 'number')).toBe(true);
    expect(report.vipHere).toBe(true);
    expect(report.files.find((f) => f.path === '/etc/kubernetes/pki/ca.crt')?.expires).toMatch(/^20\d\d-/);
    expect(report.files.find((f) => f.path === '/etc/kubernetes/pki/apiserver.crt')?.expires).toMatch(/^20\d\d-/);
    expect(report.probes['api via VIP']?.ok).toBe(true);
    expect(report.probes.controller?.ok).toBe(true);
  });

  it('leaves no secret in guestinfo-as-environment logs, journals or status output', async () => {
    const token = s.node('w1').guestinfo['guestinfo.pke.config'];
    expect(token).toBeTruthy();
    for (const node of s.lab.nodes) {
      const lines = JSON.stringify(s.logs.get(node.name));
      expect(lines).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./);
      expect(lines).not.toMatch(/[a-z0-9]{6}\.[a-z0-9]{16}/);
      expect(lines).not.toMatch(/BEGIN [A-Z ]*PRIVATE KEY/);
      expect(readFileSync(path.join(node.root, 'var/lib/pke-agent/journal.json'), 'utf8')).not.toMatch(/[a-z0-9]{6}\.[a-z0-9]{16}/);
    }
  });
});

describe.skipIf(skip)('1 control-plane and 1 worker node, Kubernetes 1.30 (kubeadm v1beta3)', () => {
  let s: ScenarioLab;
  let exitCodes: number[];
  beforeAll(async () => {
    s = await scenarioLab('v130', { masters: 1, workers: 1, kubernetesVersion: '1.30.4' });
    exitCodes = await Promise.all(s.lab.nodes.map((node) => s.boot(node)));
  }, 300_000);
  afterAll(() => s?.destroy(), 60_000);

  it('bootstraps with v1beta3 configs, and a single control-plane node still gets its VIP', async () => {
    expect(exitCodes).toEqual([0, 0]);
    const init = kubeadmDocuments(path.join(s.node('m1').root, 'etc/kubernetes/pke/kubeadm-init.yaml'));
    expect(init.every((d) => d.apiVersion === 'kubeadm.k8s.io/v1beta3' || d.kind === 'KubeletConfiguration')).toBe(true);
    const join = kubeadmDocuments(path.join(s.node('w1').root, 'etc/kubernetes/pke/kubeadm-join.yaml'))[0]!;
    expect(join.apiVersion).toBe('kubeadm.k8s.io/v1beta3');
    expect((await s.lab.vipHolder())?.name).toBe('m1');
  });
});
