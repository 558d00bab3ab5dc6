import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreConflict } from '../../../agent/controller/store/entities.ts';
import { EtcdStateStore } from '../../../agent/controller/store/etcd-store.ts';
import { emptyState } from '../../../agent/controller/store/state.ts';
import { newClusterState } from '../../../agent/controller/clusters/cluster-records.ts';
import { etcdBinary, startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';
import { CLUSTER_DEFAULTS } from '../helpers.ts';
import { clusterSpecSchema } from '../../../agent/protocol/api.ts';

/** Two etcd stores (two replicas' state) in this process, on a real etcd cluster. */

let etcd: EtcdCluster;
let prefixes = 0;

async function twoStores(): Promise<[EtcdStateStore, EtcdStateStore]> {
  const root = etcd.client().namespace(`/store-${process.pid}-${(prefixes += 1)}/`);
  const a = await EtcdStateStore.open(root, () => emptyState(''));
  const b = await EtcdStateStore.open(root, () => emptyState(''));
  return [a, b];
}

/** Until `check` holds, 5 s at most. */
async function eventually(check: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(check()).toBe(true);
}

describe.skipIf(!etcdBinary())('etcd state store', () => {
  beforeAll(async () => {
    etcd = await startEtcdCluster();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });

  it("brings each replica's changes to the other, keeping the objects handlers hold, and says which cluster changed", async () => {
    const [a, b] = await twoStores();
    const changed: string[] = [];
    b.onRemoteChange((cluster) => changed.push(cluster));
    a.mutate((state, touch) => {
      state.clusters.c1 = newClusterState('c1', clusterSpecSchema.parse(CLUSTER_DEFAULTS), 'sha256:x', Date.now());
      touch.cluster('c1');
    });
    await a.durable();
    await eventually(() => b.state.clusters.c1 !== undefined);
    const held = b.state.clusters.c1;
    a.mutate((state, touch) => {
      const cluster = state.clusters.c1;
      if (!cluster) throw new Error('no c1');
      cluster.leader.holder = 'm1';
      cluster.leader.epoch = 1;
      touch.cluster('c1');
    });
    await a.durable();
    await eventually(() => b.state.clusters.c1?.leader.holder === 'm1');
    expect(b.state.clusters.c1).toBe(held);
    expect(changed).toContain('c1');
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses the second of two changes made on the same entity at once, and sets it back to what etcd holds', async () => {
    const [a, b] = await twoStores();
    a.mutate((state, touch) => {
      state.clusters.c1 = newClusterState('c1', clusterSpecSchema.parse(CLUSTER_DEFAULTS), 'sha256:x', Date.now());
      touch.cluster('c1');
    });
    await a.durable();
    await eventually(() => b.state.clusters.c1 !== undefined);
    const claim = (store: EtcdStateStore, node: string) =>
      store.mutate((state, touch) => {
        const cluster = state.clusters.c1;
        if (!cluster) throw new Error('no c1');
        cluster.leader.epoch += 1;
        cluster.leader.holder = node;
        touch.cluster('c1');
      });
    claim(a, 'from-a');
    claim(b, 'from-b');
    const outcomes = await Promise.allSettled([a.durable(), b.durable()]);
    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toBeInstanceOf(StoreConflict);
    const winner = outcomes[0]?.status === 'fulfilled' ? 'from-a' : 'from-b';
    await eventually(() => a.state.clusters.c1?.leader.holder === winner && b.state.clusters.c1?.leader.holder === winner);
    expect(a.state.clusters.c1?.leader.epoch).toBe(1);
    expect(b.state.clusters.c1?.leader.epoch).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });
});
