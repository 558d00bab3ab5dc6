import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { virtualRouterId } from '../../agent/vip/keepalived.ts';
import {
  acceptedKubeconfig,
  addNode,
  createCluster,
  rejection,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

let t: TestController;
const opened: TestNode[] = [];

beforeAll(async () => {
  t = await startTestController();
});

afterAll(async () => {
  await Promise.all(opened.map((n) => n.client.close()));
  await t?.close();
});

async function masters(cluster: string, count: number, prefix = 'm'): Promise<TestNode[]> {
  const nodes: TestNode[] = [];
  // Rendered in batches: 200 node configs at once would only queue up on two cores.
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) => addNode(t.admin, cluster, `${prefix}${i + j + 1}`, 'master'));
    nodes.push(...(await Promise.all(batch)));
  }
  opened.push(...nodes);
  return nodes;
}

describe('leader election', () => {
  it('gives exactly one of 200 concurrent claims the lease', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const nodes = await masters(cluster, 200);
    const answers = await Promise.all(nodes.map((n) => n.client.claimLeader({})));
    const granted = answers.filter((a) => a.granted);
    expect(granted).toHaveLength(1);
    const winner = nodes[answers.findIndex((a) => a.granted)];
    expect(new Set(answers.map((a) => a.holder))).toEqual(new Set([winner?.name]));
    expect(new Set(answers.map((a) => a.epoch))).toEqual(new Set([1]));
    const status = await t.admin.status(cluster);
    expect(status.leader).toMatchObject({ holder: winner?.name, epoch: 1, initialized: false });
  });

  it('hands the lease to another node when it expires, and fences the old holder from then on', async () => {
    const cluster = (await createCluster(t.admin, { leaseTtlSeconds: 1 })).id;
    const [first, second] = await masters(cluster, 2);
    if (!first || !second) throw new Error('two masters');
    const claimed = await first.client.claimLeader({});
    expect(claimed).toMatchObject({ granted: true, epoch: 1, holder: first.name });
    // A renewal within the TTL keeps the lease.
    await sleep(600);
    expect(await first.client.claimLeader({ epoch: 1 })).toMatchObject({ granted: true, epoch: 1 });
    expect(await second.client.claimLeader({})).toMatchObject({ granted: false, holder: first.name });

    await sleep(1200);
    expect(await second.client.claimLeader({})).toMatchObject({ granted: true, epoch: 2, holder: second.name });
    const kubeconfig = await acceptedKubeconfig(first);
    for (const attempt of [
      first.client.claimLeader({ epoch: 1 }),
      first.client.join({ epoch: 1 }),
      first.client.joined({ epoch: 1, adminKubeconfig: kubeconfig }),
    ]) {
      const error = await rejection(attempt);
      expect(error.context.status).toBe(409);
      expect(error.code).toBe('fenced');
      expect(error.message).toContain('epoch 1');
    }
    // The expired holder cannot hand in the admin kubeconfig without an epoch either.
    expect((await rejection(first.client.joined({ adminKubeconfig: kubeconfig }))).context.status).toBe(403);
  });

  it('fences an epoch whose lease expired even when nobody else has claimed yet', async () => {
    const cluster = (await createCluster(t.admin, { leaseTtlSeconds: 1 })).id;
    const [only] = await masters(cluster, 1);
    if (!only) throw new Error('one master');
    await only.client.claimLeader({});
    await sleep(1200);
    expect((await rejection(only.client.claimLeader({ epoch: 1 }))).code).toBe('fenced');
    // Claiming afresh starts a new epoch.
    expect(await only.client.claimLeader({})).toMatchObject({ granted: true, epoch: 2 });
  });

  it('hands the new holder its init material with the lease, the same the join route gives it; nobody else, and not once initialized', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [first, second] = await masters(cluster, 2);
    if (!first || !second) throw new Error('two masters');
    const won = await first.client.claimLeader({});
    expect(won.init).toMatchObject({ mode: 'init', endpoint: won.endpoint });
    expect(await first.client.join({ epoch: won.epoch })).toEqual(won.init);
    const lost = await second.client.claimLeader({});
    expect(lost.granted).toBe(false);
    expect(lost.init).toBeUndefined();
    await first.client.joined({ adminKubeconfig: await acceptedKubeconfig(first) });
    const renewed = await first.client.claimLeader({ epoch: won.epoch });
    expect(renewed.granted).toBe(true);
    expect(renewed.init).toBeUndefined();
  });

  it('gives the holder its lease back when it claims again without its epoch (a rerun)', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [holder] = await masters(cluster, 1);
    if (!holder) throw new Error('one master');
    const first = await holder.client.claimLeader({});
    const again = await holder.client.claimLeader({});
    expect(again).toMatchObject({ granted: true, epoch: first.epoch, holder: holder.name });
  });

  it('stops the lease from expiring once the leader reports the cluster initialized', async () => {
    const cluster = (await createCluster(t.admin, { leaseTtlSeconds: 1 })).id;
    const [leader, other] = await masters(cluster, 2);
    if (!leader || !other) throw new Error('two masters');
    await leader.client.claimLeader({});
    await leader.client.joined({ adminKubeconfig: await acceptedKubeconfig(leader) });
    await sleep(1300);
    const state = await other.client.leaderState();
    expect(state).toMatchObject({ holder: leader.name, initialized: true, epoch: 1 });
    expect(state.leaseExpiresAt).toBeUndefined();
    expect(await other.client.claimLeader({})).toMatchObject({ granted: false, holder: leader.name });
  });

  it('wants the admin kubeconfig with the leader joined report, and joined before ready', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [leader, other] = await masters(cluster, 2);
    if (!leader || !other) throw new Error('two masters');
    await leader.client.claimLeader({});
    const missing = await rejection(leader.client.joined({}));
    expect(missing.context.status).toBe(400);
    expect(missing.message).toContain('adminKubeconfig');
    const notYaml = await rejection(leader.client.joined({ adminKubeconfig: 'clusters: [' }));
    expect(notYaml.context.status).toBe(400);
    expect((await rejection(other.client.joined({ adminKubeconfig: await acceptedKubeconfig(leader) }))).context.status).toBe(403);
    const early = await rejection(leader.client.ready({}));
    expect(early.context.status).toBe(409);
    expect(early.message).toContain('before it reported joined');
    expect((await t.admin.status(cluster)).leader.initialized).toBe(false);

    await leader.client.joined({ adminKubeconfig: await acceptedKubeconfig(leader) });
    await leader.client.ready({});
    const status = await t.admin.status(cluster);
    expect(status.leader.initialized).toBe(true);
    expect(status.nodes.find((n) => n.name === leader.name)).toMatchObject({
      state: 'ready',
      joinedAt: expect.any(String),
      readyAt: expect.any(String),
    });
  });
});

describe('leader long-poll', () => {
  it('answers at once when the caller knows an older state', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [leader, other] = await masters(cluster, 2);
    if (!leader || !other) throw new Error('two masters');
    await leader.client.claimLeader({});
    const started = Date.now();
    const state = await other.client.leaderState({ waitSeconds: 10, known: { epoch: 0, initialized: false } });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(state).toMatchObject({ holder: leader.name, epoch: 1 });
  });

  it('wakes waiters within 100 ms of the leader reporting the cluster initialized', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [leader, ...waiters] = await masters(cluster, 21);
    if (!leader) throw new Error('masters');
    const { epoch } = await leader.client.claimLeader({});
    const woken = waiters.map((w) =>
      w.client.leaderState({ waitSeconds: 30, known: { epoch, initialized: false } }).then((state) => ({ state, at: performance.now() })),
    );
    // Let every long-poll reach the controller and start waiting.
    await sleep(500);
    await leader.client.joined({ adminKubeconfig: await acceptedKubeconfig(leader) });
    const initializedAt = performance.now();
    const results = await Promise.all(woken);
    for (const { state } of results) expect(state).toMatchObject({ initialized: true, holder: leader.name });
    // Measured from the joined request's completion; a waiter answered before it counts as 0.
    const worst = Math.max(...results.map((r) => r.at - initializedAt));
    expect(worst).toBeLessThan(100);
  });

  it('wakes waiters when the lease expires, with a timer rather than a poll', async () => {
    const cluster = (await createCluster(t.admin, { leaseTtlSeconds: 2 })).id;
    const [leader, waiter] = await masters(cluster, 2);
    if (!leader || !waiter) throw new Error('two masters');
    const claimed = await leader.client.claimLeader({});
    const expiresAt = Date.parse(claimed.leaseExpiresAt ?? '');
    const state = await waiter.client.leaderState({ waitSeconds: 30, known: { epoch: claimed.epoch, initialized: false } });
    const late = Date.now() - expiresAt;
    expect(state.holder).toBeUndefined();
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(400);
  });

  it('answers when the wait ends with nothing changed', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [leader, waiter] = await masters(cluster, 2);
    if (!leader || !waiter) throw new Error('two masters');
    const claimed = await leader.client.claimLeader({});
    const started = Date.now();
    const state = await waiter.client.leaderState({ waitSeconds: 1, known: { epoch: claimed.epoch, initialized: false } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(state).toMatchObject({ holder: leader.name, initialized: false });
  });
});

describe('control-plane view', () => {
  it('lists registered control-plane nodes in registration order with the VIP and virtual router id', async () => {
    const summary = await createCluster(t.admin, { controlPlaneEndpoint: { vip: '10.20.0.5', port: 8443 } });
    const [a, b, c] = await masters(summary.id, 3, 'cp');
    const worker = await addNode(t.admin, summary.id, 'w1', 'worker');
    opened.push(worker);
    if (!a || !b || !c) throw new Error('three masters');
    for (const [node, ip] of [
      [c, '10.20.0.13'],
      [a, '10.20.0.11'],
      [b, '10.20.0.12'],
    ] as const) {
      await node.client.register({ uuid: `uuid-${node.name}`, hostname: node.name, ips: [ip], primaryIp: ip, agentVersion: 'test' });
    }
    await worker.client.register({ uuid: 'uuid-w1', hostname: 'w1', ips: ['10.20.0.50'], primaryIp: '10.20.0.50', agentVersion: 'test' });
    await a.client.claimLeader({});
    expect(await worker.client.controlPlane()).toEqual({
      vip: '10.20.0.5',
      port: 8443,
      virtualRouterId: virtualRouterId(summary.id),
      leader: a.name,
      nodes: [
        { name: c.name, primaryIp: '10.20.0.13' },
        { name: a.name, primaryIp: '10.20.0.11' },
        { name: b.name, primaryIp: '10.20.0.12' },
      ],
    });
    expect(summary.virtualRouterId).toBe(virtualRouterId(summary.id));
  });

  it('refuses a second VM that registers under a name taken by another BIOS UUID', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [node] = await masters(cluster, 1);
    if (!node) throw new Error('one master');
    const first = await node.client.register({
      uuid: 'uuid-a',
      hostname: 'x',
      ips: ['10.0.0.1'],
      primaryIp: '10.0.0.1',
      agentVersion: 'test',
    });
    // The same VM registering again (a rerun) is fine and keeps its registration time.
    const again = await node.client.register({
      uuid: 'uuid-a',
      hostname: 'x',
      ips: ['10.0.0.2'],
      primaryIp: '10.0.0.2',
      agentVersion: 'test',
    });
    expect(again.registeredAt).toBe(first.registeredAt);
    expect(again.primaryIp).toBe('10.0.0.2');
    const clash = await rejection(
      node.client.register({ uuid: 'uuid-b', hostname: 'x', ips: ['10.0.0.3'], primaryIp: '10.0.0.3', agentVersion: 'test' }),
    );
    expect(clash.context.status).toBe(409);
    expect(clash.message).toContain('uuid-a');
  });
});

describe('virtualRouterId', () => {
  it('is 1..255 and the same for the same cluster id', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => virtualRouterId(`cluster-${i}`));
    expect(Math.min(...ids)).toBe(1);
    expect(Math.max(...ids)).toBe(255);
    expect(virtualRouterId('prod-x7k2p')).toBe(virtualRouterId('prod-x7k2p'));
  });
});
