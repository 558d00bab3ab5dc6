import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PkiFile, NodeStatus } from '../../agent/protocol/api.ts';
import { httpsClusterEtcd, type ClusterEtcd } from '../../agent/controller/kubernetes/cluster-etcd.ts';
import { scratchDir } from '../helpers/cli.ts';
import {
  budgetAllows,
  controlPlaneBinaries,
  type Json,
  nodesAndNamespace,
  type RealApiServer,
  type RealEtcd,
  runningPod,
  standinKubelets,
  startApiServer,
  startEtcd,
} from '../helpers/real-control-plane.ts';
import {
  addNode,
  createLocalCluster,
  registration,
  rejection,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

/**
 * `controller node remove` end to end on the controller, against a real etcd cluster (three
 * members on loopback, TLS from the cluster's etcd CA the controller made) and the real
 * kube-apiserver with its disruption controller. The test plays what runs on the nodes: their
 * `vip sync` (it fetches the control-plane view, and a leaving node reports `vip-release`), their
 * kubelets (pods Ready; a pod being deleted is confirmed gone), and kubeadm join's etcd part.
 * test/e2e/day-two-real.test.ts does the same with real nodes in the lab.
 */
const skip = controlPlaneBinaries.available ? undefined : controlPlaneBinaries.reason;
if (skip) console.warn(`node removal tests skipped: ${skip}`);

describe.skipIf(skip)('controller node remove (real etcd and kube-apiserver)', () => {
  const dir = scratchDir('removal');
  const etcdUrls = new Map<string, string>();
  let t: TestController;
  let cluster: string;
  let etcd: RealEtcd;
  let server: RealApiServer;
  let pki: Record<PkiFile, string>;
  let etcdClient: ClusterEtcd;
  const nodes = new Map<string, TestNode>();
  let kubelets: { stop(): Promise<void> } | undefined;
  const kube: RealApiServer['call'] = (...args) => server.call(...args);

  const node = (name: string) => {
    const found = nodes.get(name);
    if (!found) throw new Error(`no test node ${name}`);
    return found;
  };
  const statusOf = async (name: string): Promise<NodeStatus | undefined> =>
    (await t.admin.status(cluster)).nodes.find((n) => n.name === name);
  const untilRemovalEnds = async (name: string): Promise<NodeStatus> => {
    for (let i = 0; i < 600; i += 1) {
      const status = await statusOf(name);
      if (status?.removal && status.removal.state !== 'running') return status;
      await sleep(100);
    }
    throw new Error(`the removal of ${name} did not end`);
  };
  const memberNames = async () => (await etcdClient.members()).map((m) => m.name).sort();

  beforeAll(async () => {
    t = await startTestController({
      removals: {
        etcdEndpoint: (n) => etcdUrls.get(n.name) ?? `https://${n.primaryIp}:2379`,
        vipReleaseTimeoutMs: 1500,
        peersTimeoutMs: 5000,
        pollMs: 50,
      },
    });
    const summary = await createLocalCluster(t.admin);
    cluster = summary.id;
    for (const [i, name] of ['m1', 'm2', 'm3', 'w1'].entries()) {
      const added = await addNode(t.admin, cluster, name, name.startsWith('m') ? 'master' : 'worker');
      await added.client.register(registration(name, `10.10.0.${11 + i}`));
      nodes.set(name, added);
    }
    expect((await node('m1').client.claimLeader({})).granted).toBe(true);
    pki = (await node('m1').client.pki()).files as Record<PkiFile, string>;
    etcd = await startEtcd(dir.dir, pki, ['m1', 'm2', 'm3']);
    for (const member of etcd.members) etcdUrls.set(member.name, member.clientUrl);
    const { port } = node('m1').config.controlPlaneEndpoint;
    server = await startApiServer(dir.dir, pki, etcd, ['disruption'], { port });
    // The leader's admin.conf: the controller reaches the cluster's API with it from now on.
    await node('m1').client.joined({ adminKubeconfig: server.kubeconfig });
    etcdClient = httpsClusterEtcd({
      caPem: pki['etcd/ca.crt'],
      certPem: etcd.client.certPem,
      keyPem: etcd.client.keyPem,
      endpoints: etcd.members.map((m) => m.clientUrl),
    });

    await nodesAndNamespace(server, ['m1', 'm2', 'm3', 'w1'], 'shop');
    kubelets = standinKubelets(server, 'shop');
  }, 180_000);

  afterAll(async () => {
    await kubelets?.stop();
    await etcdClient?.close();
    await Promise.all([...nodes.values()].map((n) => n.client.close()));
    await t?.close();
    await server?.close();
    await etcd?.close();
    dir.remove();
  });

  it('removes a worker: drains it within its pods’ disruption budget, deletes the Node, revokes its token', async () => {
    const budget = { metadata: { name: 'web' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } };
    expect((await kube('POST', '/apis/policy/v1/namespaces/shop/poddisruptionbudgets', budget)).code).toBe(201);
    await runningPod(server, 'shop', 'web-a', 'w1');
    await runningPod(server, 'shop', 'web-b', 'w1');
    await budgetAllows(server, 'shop', 'web', 1);

    const started = await t.admin.removeNode(cluster, { node: 'w1', timeoutSeconds: 60 });
    expect(started.state).toBe('removing');
    // The ReplicaSet controller's part: once one pod is evicted, a replacement runs on m2 and the budget allows the next.
    for (let i = 0; ; i += 1) {
      const pods = ((await kube('GET', '/api/v1/namespaces/shop/pods')).json.items as Json[]).map((p) => p.metadata.name);
      if (pods.length < 2) break;
      if (i > 300) throw new Error('no pod was evicted');
      await sleep(100);
    }
    // While one pod waits for the budget, the removal shows its drain running.
    expect((await statusOf('w1'))?.removal).toMatchObject({ state: 'running', step: 'drain' });
    await runningPod(server, 'shop', 'web-c', 'm2');

    const removed = await untilRemovalEnds('w1');
    expect(removed.state).toBe('removed');
    expect(removed.removal?.steps.map((s) => [s.name, s.state])).toEqual([
      ['quorum', 'skipped'],
      ['drain', 'done'],
      ['release-vip', 'skipped'],
      ['etcd-leader', 'skipped'],
      ['etcd-member', 'skipped'],
      ['delete-node', 'done'],
      ['revoke', 'done'],
      ['destroy-vm', 'skipped'],
      ['peers', 'skipped'],
    ]);
    expect(removed.removal?.steps.find((s) => s.name === 'drain')?.note).toBe('evicted 2, deleted 0, left 0 (DaemonSet and mirror pods)');
    expect((await kube('GET', '/api/v1/nodes/w1')).code).toBe(404);
    const pods = ((await kube('GET', '/api/v1/namespaces/shop/pods')).json.items as Json[]).map(
      (p) => `${p.metadata.name}@${p.spec.nodeName}`,
    );
    expect(pods).toEqual(['web-c@m2']);
    expect((await rejection(node('w1').client.status())).code).toBe('token-revoked');
    // A second request answers the finished removal again.
    expect((await t.admin.removeNode(cluster, { node: 'w1' })).state).toBe('removed');
  }, 120_000);

  it('refuses to remove a control-plane node when the rest would lose etcd quorum, naming the rule and the numbers', async () => {
    await etcd.kill('m2');
    try {
      const refused = await rejection(t.admin.removeNode(cluster, { node: 'm1' }));
      expect(refused.context.status).toBe(409);
      expect(refused.message).toBe(
        `controller POST /v1/clusters/${cluster}/removals: 409 conflict: ` +
          'refused: removing m1 would leave 2 etcd members with 1 healthy (m3), below their quorum of 2 (etcd needs a majority of its voting members healthy: quorum of N = floor(N/2)+1)',
      );
      // Nothing was done: m1 is no more removing than before.
      expect((await statusOf('m1'))?.removal).toBeUndefined();
      expect(await memberNames()).toEqual(['m1', 'm2', 'm3']);
    } finally {
      await etcd.restart('m2');
    }
  }, 120_000);

  it('removes a live control-plane node: its VIP first, etcd leadership moved off it, its member removed, peers updated; resumable', async () => {
    // m3 leads etcd, so that its leadership has to move.
    const members = await etcdClient.members();
    const m3 = members.find((m) => m.name === 'm3');
    const leaderNow = members.find((m) => m.name !== 'm3');
    if (!m3 || !leaderNow) throw new Error('etcd members are missing');
    const currentLeader = (await etcdClient.status(leaderNow)).leaderId;
    if (currentLeader !== m3.id) {
      const leader = members.find((m) => m.id === currentLeader);
      if (leader) await etcdClient.moveLeader(leader, m3.id);
    }
    expect((await etcdClient.status(m3)).leaderId).toBe(m3.id);

    // First attempt: m3's vip sync does not run in time, so the removal stops at the VIP hand-over.
    await t.admin.removeNode(cluster, { node: 'm3' });
    const stopped = await untilRemovalEnds('m3');
    expect(stopped.removal?.state).toBe('failed');
    expect(stopped.removal?.step).toBe('release-vip');
    expect(stopped.removal?.steps.find((s) => s.name === 'release-vip')?.note).toMatch(
      /^m3 did not report releasing the VIP within 1\.5 s/,
    );
    const drainedAt = stopped.removal?.steps.find((s) => s.name === 'drain')?.at;
    // The view shows m3 leaving; the other nodes keep it as a peer until it is gone.
    const view = await node('m1').client.controlPlane();
    expect(view.nodes.map((n) => [n.name, n.leaving ?? false])).toEqual([
      ['m1', false],
      ['m2', false],
      ['m3', true],
    ]);

    // Rerun: m3's vip sync now sees itself leaving and reports keepalived stopped, as `pke-agent vip sync` does.
    await t.admin.removeNode(cluster, { node: 'm3' });
    const m3View = await node('m3').client.controlPlane();
    expect(m3View.nodes.find((n) => n.name === 'm3')?.leaving).toBe(true);
    await node('m3').client.events({ events: [{ phase: 'vip-release', type: 'end', at: new Date().toISOString(), attempt: 1 }] });
    // m1 and m2's vip sync fetch the view without m3 once it is gone.
    let peersSeen: string[][] = [];
    for (let i = 0; i < 200; i += 1) {
      const status = await statusOf('m3');
      if (status?.removal?.steps.some((s) => s.name === 'revoke' && s.state === 'done')) {
        peersSeen = await Promise.all(['m1', 'm2'].map(async (n) => (await node(n).client.controlPlane()).nodes.map((p) => p.name)));
        break;
      }
      await sleep(50);
    }
    expect(peersSeen, JSON.stringify(await statusOf('m3'))).toEqual([
      ['m1', 'm2'],
      ['m1', 'm2'],
    ]);
    const removed = await untilRemovalEnds('m3');
    expect(removed.state).toBe('removed');
    const steps = new Map(removed.removal?.steps.map((s) => [s.name, s]));
    // The steps done in the first attempt were not done again.
    expect(steps.get('drain')?.at).toBe(drainedAt);
    expect(steps.get('release-vip')?.state).toBe('done');
    expect(steps.get('etcd-leader')?.note).toMatch(/^etcd leadership moved to m[12]$/);
    expect(steps.get('etcd-member')?.note).toBe('etcd members now: m1, m2');
    expect(steps.get('peers')?.note).toBe('m1, m2 fetched the new peers');
    expect(await memberNames()).toEqual(['m1', 'm2']);
    expect((await kube('GET', '/api/v1/nodes/m3')).code).toBe(404);
    expect((await rejection(node('m3').client.controlPlane())).code).toBe('token-revoked');
  }, 120_000);

  it('adds a control-plane node after a removal: the new member and the view list it', async () => {
    const m4 = await addNode(t.admin, cluster, 'm4', 'master');
    nodes.set('m4', m4);
    await m4.client.register(registration('m4', '10.10.0.15'));
    // kubeadm join's etcd part: member add, then the new etcd joins the existing cluster.
    const member = await etcd.add('m4');
    etcdUrls.set('m4', member.clientUrl);
    expect(await memberNames()).toEqual(['m1', 'm2', 'm4']);
    expect((await m4.client.controlPlane()).nodes.map((n) => n.name)).toEqual(['m1', 'm2', 'm4']);
  }, 60_000);

  it('removes a dead control-plane node from the survivors', async () => {
    // m4 loses power: its etcd stops answering, and never comes back.
    await etcd.kill('m4');
    await t.admin.removeNode(cluster, { node: 'm4' });
    const removed = await untilRemovalEnds('m4');
    expect(removed.state).toBe('removed');
    expect(removed.removal?.dead).toBe(true);
    const steps = new Map(removed.removal?.steps.map((s) => [s.name, s]));
    expect(steps.get('quorum')?.note).toBe('2 of 3 etcd members healthy; m4 does not answer: removed as dead');
    expect(steps.get('drain')?.state).toBe('skipped');
    expect(steps.get('release-vip')?.state).toBe('skipped');
    expect(steps.get('etcd-member')?.note).toBe('etcd members now: m1, m2');
    // Nobody ran vip sync on m1 and m2 this time: the step says so, and ends.
    expect(steps.get('peers')?.note).toBe('not fetched within 5 s by m1, m2; their vip sync takes it up when it next runs');
    expect(await memberNames()).toEqual(['m1', 'm2']);
  }, 120_000);
});
