import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { upgradeSkewRefusal, upgradeView } from '../../agent/controller/day-two/upgrade.ts';
import { provisionedNode, replacingCluster } from '../helpers/cluster-state.ts';
import { createUpgradeClients, type UpgradeApi } from '../../agent/protocol/upgrade-client.ts';
import { AGENT_ENTRY } from '../helpers/cli.ts';
import {
  addNode,
  type ClusterApiStandin,
  createLocalCluster,
  initializedLeader,
  NO_RETRY,
  registration,
  rejection,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

describe('the version skew rule', () => {
  it('takes the next minor or a newer patch, and refuses a skip, a downgrade or the same version', () => {
    expect(upgradeSkewRefusal('1.36.3', '1.37.2')).toBeUndefined();
    expect(upgradeSkewRefusal('1.36.3', '1.37.0')).toBeUndefined();
    expect(upgradeSkewRefusal('1.36.3', '1.36.4')).toBeUndefined();
    expect(upgradeSkewRefusal('1.36.3', '1.38.0')).toMatch(
      /skips a minor version: .*one minor version at a time.*upgrade to 1\.37\.x first/,
    );
    expect(upgradeSkewRefusal('1.36.3', '1.36.3')).toMatch(/not newer/);
    expect(upgradeSkewRefusal('1.36.3', '1.35.9')).toMatch(/downgrades are not supported/);
    expect(upgradeSkewRefusal('1.36.3', '2.0.0')).toMatch(/not newer|skips/);
  });
});

describe('what status shows of an upgrade by rolling replacement', () => {
  it("shows each old node's replacement and where the node in turn is: the new VM's bootstrap, then the old node's removal", () => {
    const c = replacingCluster('c-cp-2', 'c-cp-3', ['c-cp-1']);
    c.nodes['c-cp-1']!.upgrade!.replacement = 'c-cp-4';
    c.nodes['c-cp-3'] = provisionedNode('c-cp-3', { phase: 'kube-join', phaseState: 'running' });
    const view = upgradeView(c)!;
    expect(view.strategy).toBe('replace');
    expect(view.template).toBe('pke-node-k8s-1.32.0');
    expect(view.nodes.map((n) => [n.name, n.mode, n.replacement, n.state, n.phase])).toEqual([
      ['c-cp-1', 'replace', 'c-cp-4', 'upgraded', undefined],
      ['c-cp-2', 'replace', 'c-cp-3', 'upgrading', 'c-cp-3: kube-join'],
      ['c-workers-1', 'replace', undefined, 'waiting', undefined],
    ]);
    c.nodes['c-cp-2']!.removal = { requestedAt: 3, force: false, timeoutSeconds: 300, state: 'running', step: 'etcd-member', steps: {} };
    expect(upgradeView(c)!.nodes[1]?.phase).toBe('remove/etcd-member');
    expect(upgradeView(c)!.stopped).toBeUndefined();
  });

  it("stops at the replacement whose bootstrap failed, at the old node's failed removal step, or at why the controller cannot go on", () => {
    const c = replacingCluster('c-cp-1', 'c-cp-3');
    c.nodes['c-cp-3'] = provisionedNode('c-cp-3', { phase: 'kube-join', phaseState: 'failed', lastError: 'kubeadm join exited 1' });
    expect(upgradeView(c)!.stopped).toEqual({ node: 'c-cp-3', phase: 'kube-join', error: 'kubeadm join exited 1' });
    expect(upgradeView(c)!.nodes[0]?.state).toBe('failed');

    c.nodes['c-cp-3'] = provisionedNode('c-cp-3', { readyAt: 4 });
    c.nodes['c-cp-1']!.removal = {
      requestedAt: 5,
      force: false,
      timeoutSeconds: 300,
      state: 'failed',
      step: 'quorum',
      steps: { quorum: { state: 'failed', at: 6, note: 'etcd has active alarms (NOSPACE)' } },
    };
    expect(upgradeView(c)!.stopped).toEqual({ node: 'c-cp-1', phase: 'remove/quorum', error: 'etcd has active alarms (NOSPACE)' });

    delete c.nodes['c-cp-1']!.removal;
    c.upgrade!.error = 'c-cp-3 is Ready with kubelet v1.31.2, not v1.32.0';
    expect(upgradeView(c)!.stopped).toEqual({
      node: 'c-cp-1',
      phase: 'replace',
      error: 'c-cp-3 is Ready with kubelet v1.31.2, not v1.32.0',
    });
  });
});

describe('a rolling upgrade on the controller', () => {
  let t: TestController;
  let api: ClusterApiStandin;
  let cluster: string;
  const nodes = new Map<string, TestNode & { upgrade: UpgradeApi }>();

  beforeAll(async () => {
    t = await startTestController();
    cluster = (await createLocalCluster(t.admin, { kubernetesVersion: '1.31.2' })).id;
    for (const [name, role] of [
      ['m1', 'master'],
      ['m2', 'master'],
      ['w1', 'worker'],
    ] as const) {
      const node = await addNode(t.admin, cluster, name, role);
      nodes.set(name, { ...node, upgrade: createUpgradeClients(node.config, { retry: NO_RETRY }).upgrade });
    }
    const [m1, m2, w1] = ['m1', 'm2', 'w1'].map((n) => nodes.get(n)!);
    // Registered in the order w1, m2, m1: the upgrade's order is not the registration's.
    for (const [i, node] of [w1!, m2!, m1!].entries()) await node.client.register(registration(node.name, `10.10.0.${11 + i}`));
    api = (await initializedLeader(m1!)).api;
    for (const node of [m2!, w1!]) {
      await node.client.join({}, { waitSeconds: 5 });
      await node.client.joined({});
    }
  });
  afterAll(async () => {
    await Promise.all([...nodes.values()].map((n) => n.client.close()));
    await api?.close();
    await t?.close();
  });

  it('is refused while a node is not Ready, naming it', async () => {
    for (const name of ['m2', 'w1']) await nodes.get(name)!.client.ready({});
    const refused = await rejection(t.admin.startUpgrade(cluster, { to: '1.32.0' }));
    expect(refused.context.status).toBe(409);
    expect(refused.message).toContain('not ready: m1');
    await nodes.get('m1')!.client.ready({});
  });

  it('refuses a skipped minor version from the CLI with exit 2, naming --to and the skew rule', async () => {
    const result = await execa(
      process.execPath,
      [
        AGENT_ENTRY,
        'controller',
        'cluster',
        'upgrade',
        '--cluster',
        cluster,
        '--to',
        '1.33.1',
        '--url',
        t.controller.url,
        '--data-dir',
        t.dataDir,
      ],
      { reject: false },
    );
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/--to: .*: 1\.33\.1 skips a minor version: Kubernetes is upgraded one minor version at a time/);
    expect((await t.admin.status(cluster)).upgrade).toBeUndefined();
  });

  it('hands the slot to the leader first (kubeadm upgrade apply), then the other control-plane node, then the worker, one at a time', async () => {
    const started = await t.admin.startUpgrade(cluster, { to: '1.32.0' });
    expect(started.nodes.map((n) => [n.name, n.mode, n.state])).toEqual([
      ['m1', 'apply', 'waiting'],
      ['m2', 'node', 'waiting'],
      ['w1', 'node', 'waiting'],
    ]);
    // Asking again with the same version changes nothing; another version is refused while this one runs.
    expect((await t.admin.startUpgrade(cluster, { to: '1.32.0' })).startedAt).toBe(started.startedAt);
    expect((await rejection(t.admin.startUpgrade(cluster, { to: '1.32.1' }))).context.status).toBe(409);

    const [m1, m2, w1] = ['m1', 'm2', 'w1'].map((n) => nodes.get(n)!.upgrade);
    // The worker and m2 wait while nobody holds the slot: m1 is next in line.
    expect((await rejection(w1!.slot('1.32.0', 0))).code).toBe('slot-busy');
    const waiting = m2!.slot('1.32.0', 10);
    const grant = await m1!.slot('1.32.0', 0);
    expect(grant.mode).toBe('apply');
    // A rerun of the holder gets its slot back, with the same grant time.
    expect((await m1!.slot('1.32.0', 0)).grantedAt).toBe(grant.grantedAt);
    // The slot has no expiry: m2 is still waiting when its long-poll ends.
    expect((await rejection(waiting)).code).toBe('slot-busy');
    // Only the holder is drained or reports itself upgraded; a run for another version is refused.
    expect((await rejection(w1!.drain(5))).message).toContain('does not hold the upgrade slot');
    expect((await rejection(m2!.upgraded('1.32.0'))).message).toContain('does not hold the upgrade slot');
    expect((await rejection(w1!.slot('1.33.0', 0))).message).toContain('being upgraded to 1.32.0, not 1.33.0');

    const status = await t.admin.status(cluster);
    expect(status.upgrade?.holder).toBe('m1');
    expect(status.upgrade?.nodes.map((n) => n.state)).toEqual(['upgrading', 'waiting', 'waiting']);
  });

  it('stops the rollout at the holder whose upgrade step failed, and says where', async () => {
    const m1 = nodes.get('m1')!;
    await m1.client.events({
      events: [
        { phase: 'upgrade-kubeadm', type: 'fail', at: new Date().toISOString(), attempt: 1, message: 'kubeadm upgrade apply exited 1' },
      ],
    });
    const { upgrade } = await t.admin.status(cluster);
    expect(upgrade?.stopped).toEqual({
      node: 'm1',
      phase: 'upgrade-kubeadm',
      error: expect.stringContaining('kubeadm upgrade apply exited 1'),
    });
    expect(upgrade?.nodes[0]?.state).toBe('failed');
    const shown = await execa(
      process.execPath,
      [AGENT_ENTRY, 'controller', 'status', '--cluster', cluster, '--url', t.controller.url, '--data-dir', t.dataDir],
      { reject: false },
    );
    expect(shown.stdout).toMatch(
      /upgrade 1\.31\.2 -> 1\.32\.0: 0\/3 nodes upgraded, STOPPED at m1, phase upgrade-kubeadm: .*kubeadm upgrade apply exited 1/,
    );
  });
});
