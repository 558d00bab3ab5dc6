import { readFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { newClusterState } from '../../agent/controller/clusters/cluster-records.ts';
import { claimRenewal, RENEWAL_CLAIM_TTL_MS } from '../../agent/controller/certificates/renewal-claim.ts';
import { startController } from '../../agent/controller/controller.ts';
import { EtcdStateStore } from '../../agent/controller/store/etcd-store.ts';
import { emptyState, type NodeState } from '../../agent/controller/store/state.ts';
import { silentLogger } from '../../agent/core/log.ts';
import { clusterSpecSchema } from '../../agent/protocol/api.ts';
import { AdminClient, createNodeClient } from '../../agent/protocol/client.ts';
import { scratchDir } from '../helpers/cli.ts';
import { etcdBinary, startEtcdCluster } from '../helpers/etcd-cluster.ts';
import {
  CLUSTER_DEFAULTS,
  type ControllerProcess,
  controllerCommand,
  NO_RETRY,
  addNode,
  type ClusterApiStandin,
  createLocalCluster,
  initializedLeader,
  rejection,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

/**
 * The certificate renewal claim: one control-plane node of a cluster renews (and restarts its
 * etcd and API server) at a time. Who gets it, who is refused and told whom to wait for, how it
 * ends (the holder's report of the finished renewal, or its expiry), and that it outlives a
 * controller restart and reaches the other replicas through the etcd store.
 */

const closing: { close(): Promise<unknown> }[] = [];
afterAll(async () => {
  for (const item of closing.reverse()) await item.close();
});
afterEach(() => {
  vi.useRealTimers();
});

/** m1 initialized the cluster, m2 joined it as a control-plane node, m3 never joined; w1 is a worker. */
async function formedCluster(t: TestController) {
  const cluster = (await createLocalCluster(t.admin)).id;
  const node = async (name: string, role: 'master' | 'worker'): Promise<TestNode> => {
    const added = await addNode(t.admin, cluster, name, role);
    closing.push(added.client);
    return added;
  };
  const [m1, m2, m3, w1] = [await node('m1', 'master'), await node('m2', 'master'), await node('m3', 'master'), await node('w1', 'worker')];
  const api: ClusterApiStandin = (await initializedLeader(m1)).api;
  closing.push(api);
  await m2.client.join({});
  await m2.client.joined({});
  return { cluster, m1, m2, m3, w1 };
}

const report = (renewedAt?: string) => ({
  checkedAt: new Date().toISOString(),
  renewedAt,
  certificates: [{ name: 'apiserver.crt' as const, notAfter: new Date(Date.now() + 365 * 86_400_000).toISOString() }],
});

describe('the certificate renewal claim', () => {
  let t: TestController;
  beforeAll(async () => {
    t = await startTestController();
    closing.push(t);
  });

  it("goes to one control-plane node at a time; the others are told who holds it; the report of the holder's renewal ends it", async () => {
    const { cluster, m1, m2, m3, w1 } = await formedCluster(t);

    const before = Date.now();
    const first = await m1.client.claimRenewal();
    expect(first.granted).toBe(true);
    const until = Date.parse(first.expiresAt);
    expect(until - before).toBeGreaterThanOrEqual(RENEWAL_CLAIM_TTL_MS);
    expect(until - Date.now()).toBeLessThanOrEqual(RENEWAL_CLAIM_TTL_MS);
    expect(await m2.client.claimRenewal()).toEqual({ granted: false, holder: 'm1', expiresAt: first.expiresAt });
    // A rerun of the holder gets its claim back, with the expiry it had.
    expect(await m1.client.claimRenewal()).toEqual(first);
    expect((await t.admin.status(cluster)).certificateRenewal).toEqual({ holder: 'm1', expiresAt: first.expiresAt });
    // What the operator reads in `controller status`.
    const shown = await controllerCommand({ url: t.controller.url } as ControllerProcess, t.dataDir, ['status', '--cluster', cluster]);
    expect(shown.exitCode, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`certificate renewal m1 until ${first.expiresAt}`);

    const unjoined = await rejection(m3.client.claimRenewal());
    expect(unjoined.context.status).toBe(409);
    expect(unjoined.message).toMatch(/node m3 asks to renew its certificates, but the controller knows it as no joined control-plane node/);
    const worker = await rejection(w1.client.claimRenewal());
    expect(worker.context.status).toBe(403);
    expect(worker.message).toMatch(/is for control-plane nodes; w1 is a worker/);

    // A check's report (no renewedAt) is no end of a renewal.
    await m1.client.reportCertificates(report());
    expect(await m2.client.claimRenewal()).toMatchObject({ granted: false, holder: 'm1' });
    // Nor is another node's renewal report.
    await m2.client.reportCertificates(report(new Date().toISOString()));
    expect(await m2.client.claimRenewal()).toMatchObject({ granted: false, holder: 'm1' });

    await m1.client.reportCertificates(report(new Date().toISOString()));
    expect((await t.admin.status(cluster)).certificateRenewal).toBeUndefined();
    const second = await m2.client.claimRenewal();
    expect(second.granted).toBe(true);
    expect(await m1.client.claimRenewal()).toEqual({ granted: false, holder: 'm2', expiresAt: second.expiresAt });
    expect((await t.admin.status(cluster)).certificateRenewal?.holder).toBe('m2');
  });

  it('passes to the next node that asks once it has expired', async () => {
    const { cluster, m1, m2 } = await formedCluster(t);
    const held = await m1.client.claimRenewal();
    expect(held.granted).toBe(true);
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(Date.parse(held.expiresAt) - 1000);
    expect(await m2.client.claimRenewal()).toMatchObject({ granted: false, holder: 'm1' });
    vi.setSystemTime(Date.parse(held.expiresAt) + 1000);
    expect((await t.admin.status(cluster)).certificateRenewal).toBeUndefined();
    const taken = await m2.client.claimRenewal();
    expect(taken.granted).toBe(true);
    expect(Date.parse(taken.expiresAt)).toBeGreaterThan(Date.parse(held.expiresAt));
    // m1's late report of its renewal does not end m2's claim.
    await m1.client.reportCertificates(report(new Date().toISOString()));
    expect(await m1.client.claimRenewal()).toEqual({ granted: false, holder: 'm2', expiresAt: taken.expiresAt });
  });
});

describe('the renewal claim across a controller restart', () => {
  it('is still held by the same node, with the same expiry, when the controller comes back from its data dir', async () => {
    const data = scratchDir('renewal-claim-restart');
    closing.push({ close: async () => data.remove() });
    const serve = async (port: number) => {
      const controller = await startController({ dataDir: data.dir, host: '127.0.0.1', port, log: silentLogger, verifyStateTouches: true });
      const admin = new AdminClient({
        url: controller.url,
        caCert: controller.caCertPem,
        token: (await readFile(controller.adminTokenFile, 'utf8')).trim(),
        retry: NO_RETRY,
      });
      const close = async () => {
        await admin.close();
        await controller.close();
      };
      return { controller, dataDir: data.dir, admin, close };
    };
    const first = await serve(0);
    const { cluster, m1, m2 } = await formedCluster(first);
    const held = await m1.client.claimRenewal();
    expect(held.granted).toBe(true);
    await first.close();

    const second = await serve(Number(new URL(first.controller.url).port));
    closing.push(second);
    const m2Again = createNodeClient(m2.config, { retry: NO_RETRY });
    const m1Again = createNodeClient(m1.config, { retry: NO_RETRY });
    closing.push(m1Again, m2Again);
    expect(await m2Again.claimRenewal()).toEqual({ granted: false, holder: 'm1', expiresAt: held.expiresAt });
    expect(await m1Again.claimRenewal()).toEqual(held);
    expect((await second.admin.status(cluster)).certificateRenewal).toEqual({ holder: 'm1', expiresAt: held.expiresAt });
  });
});

describe.skipIf(!etcdBinary())('the renewal claim in the etcd store (controller replicas)', () => {
  it('taken through one replica is refused through another, and read back by a replica that starts afterwards', async () => {
    const etcd = await startEtcdCluster();
    closing.push({ close: () => etcd.stop() });
    const root = etcd.client().namespace(`/renewal-claim-${process.pid}/`);
    const a = await EtcdStateStore.open(root, () => emptyState(''));
    const b = await EtcdStateStore.open(root, () => emptyState(''));
    closing.push(a, b);
    const master = (name: string): NodeState => ({ name, role: 'master', pool: 'control-plane', tokens: [], joinedAt: Date.now() });
    a.mutate((state, touch) => {
      const cluster = newClusterState('c1', clusterSpecSchema.parse(CLUSTER_DEFAULTS), 'sha256:x', Date.now());
      cluster.nodes.m1 = master('m1');
      cluster.nodes.m2 = master('m2');
      state.clusters.c1 = cluster;
      touch.cluster('c1');
      touch.node('c1', 'm1');
      touch.node('c1', 'm2');
    });
    await a.durable();
    const claim = (store: EtcdStateStore, node: string) =>
      store.mutate((state, touch) => {
        const cluster = state.clusters.c1;
        if (!cluster) throw new Error('no cluster c1 in this replica');
        return claimRenewal(cluster, node, Date.now(), touch);
      });
    const held = claim(a, 'm1');
    expect(held.granted).toBe(true);
    await a.durable();
    for (let i = 0; i < 250 && b.state.clusters.c1?.certificateRenewal === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    expect(claim(b, 'm2')).toEqual({ granted: false, holder: 'm1', expiresAt: held.expiresAt });

    const c = await EtcdStateStore.open(root, () => emptyState(''));
    closing.push(c);
    expect(claim(c, 'm2')).toEqual({ granted: false, holder: 'm1', expiresAt: held.expiresAt });
  }, 60_000);
});
