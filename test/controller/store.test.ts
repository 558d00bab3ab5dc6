import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyState } from '../../agent/controller/store/state.ts';
import { StateStore } from '../../agent/controller/store/state-store.ts';
import { scratchDir } from '../helpers/cli.ts';

const dirs: { remove: () => void }[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove();
});

function stateFile(): string {
  const dir = scratchDir('store');
  dirs.push(dir);
  return path.join(dir.dir, 'state.json');
}

/** A node in a cluster shell that the state schema accepts. */
function addCluster(store: StateStore, id: string): void {
  store.mutate((state, touch) => {
    touch.cluster(id);
    state.clusters[id] = {
      id,
      name: id,
      createdAt: 1,
      spec: {
        name: id,
        kubernetesVersion: '1.31.2',
        controlPlaneEndpoint: { vip: '10.0.0.1', port: 6443 },
        controlPlaneNodes: 3,
        pools: [{ name: 'workers', labels: {}, taints: [] }],
        podCidr: '10.244.0.0/16',
        serviceCidr: '10.96.0.0/12',
        addons: { cni: 'calico', kubeProxy: true, coreDns: true },
        backups: { intervalHours: 6, retain: 14, maxBytes: 4 * 1024 ** 3 },
        cgroupDriver: 'systemd',
        allowCgroupV1: false,
        nodeTokenTtlSeconds: 86400,
        leaseTtlSeconds: 30,
        joinSlotTtlSeconds: 600,
        bootstrapTokenTtlSeconds: 900,
        initTokenTtlSeconds: 7200,
      },
      caCertHash: 'sha256:00',
      nodes: {},
      leader: { epoch: 0, initialized: false },
      revokedTokens: {},
    };
  });
}

function addNode(store: StateStore, cluster: string, name: string): void {
  store.mutate((state, touch) => {
    const c = state.clusters[cluster];
    if (c) c.nodes[name] = { name, role: 'worker', pool: 'workers', tokens: [] };
    touch.node(cluster, name);
  });
}

describe('state store', () => {
  it('keeps every durable mutation when reopened without a clean close (the journal is replayed)', async () => {
    const file = stateFile();
    const store = await StateStore.open(file, () => emptyState('admin-1'));
    addCluster(store, 'c1');
    for (let i = 0; i < 200; i += 1) addNode(store, 'c1', `n${i}`);
    store.mutate((state, touch) => {
      const c = state.clusters.c1;
      if (c) c.leader = { epoch: 3, holder: 'n1', expiresAt: 1_900_000_000_000, initialized: false };
      touch.cluster('c1');
    });
    await store.durable();
    expect(readFileSync(file.replace('.json', '.journal'), 'utf8').split('\n').length).toBeGreaterThan(200);

    const reopened = await StateStore.open(file, () => emptyState('never-used'));
    expect(reopened.state.adminTokenId).toBe('admin-1');
    expect(Object.keys(reopened.state.clusters.c1?.nodes ?? {})).toHaveLength(200);
    expect(reopened.state.clusters.c1?.leader).toEqual({ epoch: 3, holder: 'n1', expiresAt: 1_900_000_000_000, initialized: false });
    // Opening folds the journal into a new snapshot.
    expect(readFileSync(file.replace('.json', '.journal'), 'utf8')).toBe('');
    expect(JSON.parse(readFileSync(file, 'utf8')).state.clusters.c1.leader.epoch).toBe(3);
    await reopened.close();
    await store.close();
  });

  it('ignores a journal record cut short by a crash (it was never acknowledged)', async () => {
    const file = stateFile();
    const store = await StateStore.open(file, () => emptyState('admin-1'));
    addCluster(store, 'c1');
    addNode(store, 'c1', 'kept');
    await store.durable();
    appendFileSync(file.replace('.json', '.journal'), '{"s":99,"t":"node","c":"c1","n":"torn","v":{"na');
    const reopened = await StateStore.open(file, () => emptyState('x'));
    expect(Object.keys(reopened.state.clusters.c1?.nodes ?? {})).toEqual(['kept']);
    await reopened.close();
    await store.close();
  });

  it('with verifyTouches, fails the write of a mutation that changed what it did not touch', async () => {
    const file = stateFile();
    const store = await StateStore.open(file, () => emptyState('admin-1'), { verifyTouches: true });
    addCluster(store, 'c1');
    addNode(store, 'c1', 'n1');
    await store.durable();
    store.mutate((state, touch) => {
      const c = state.clusters.c1;
      if (c?.nodes.n1) c.nodes.n1.phase = 'preflight';
      touch.cluster('c1');
    });
    await expect(store.durable()).rejects.toThrow('changed n/c1/n1 without touching it');
  });

  it('refuses a journal with a broken record before its end, naming the file and line', async () => {
    const file = stateFile();
    const store = await StateStore.open(file, () => emptyState('admin-1'));
    await store.close();
    writeFileSync(
      file.replace('.json', '.journal'),
      '{"s":1,"t":"root","v":{"format":2,"adminTokenId":"a"}}\nnot json\n{"s":3,"t":"root","v":{"format":2,"adminTokenId":"b"}}\n',
    );
    await expect(StateStore.open(file, () => emptyState('x'))).rejects.toThrow(/state\.journal is corrupt \(line 2/);
  });

  it('refuses a snapshot of another state format, saying which', async () => {
    const file = stateFile();
    const store = await StateStore.open(file, () => emptyState('admin-1'));
    await store.close();
    const snapshot = JSON.parse(readFileSync(file, 'utf8'));
    snapshot.state.format = 1;
    writeFileSync(file, JSON.stringify(snapshot));
    await expect(StateStore.open(file, () => emptyState('x'))).rejects.toThrow(
      `the controller state ${file} has format 1; this controller reads format 2 only`,
    );
  });

  it('refuses a snapshot that is not JSON, naming it', async () => {
    const file = stateFile();
    writeFileSync(file, '{"journalSeq": 0, "state": {');
    await expect(StateStore.open(file, () => emptyState('x'))).rejects.toThrow(`the controller state ${file} is corrupt`);
  });

  it('acknowledges a burst of mutations once they are journaled: each entity once, records in sequence', async () => {
    const file = stateFile();
    const store = await StateStore.open(file, () => emptyState('admin-1'));
    addCluster(store, 'c1');
    const acknowledged = Array.from({ length: 500 }, (_, i) => {
      addNode(store, 'c1', `n${i}`);
      return store.durable();
    });
    await Promise.all(acknowledged);
    const records = readFileSync(file.replace('.json', '.journal'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { s: number; t: string });
    expect(records.filter((r) => r.t === 'node')).toHaveLength(500);
    expect(records.map((r) => r.s)).toEqual(records.map((_, i) => (records[0]?.s ?? 0) + i));
    await store.close();
  });
});
