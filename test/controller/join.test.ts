import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addNode,
  type ClusterApiStandin,
  createCluster,
  createLocalCluster,
  initializedLeader,
  opensslCaHash,
  rejection,
  startClusterApi,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

const TOKEN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;

let t: TestController;
const opened: TestNode[] = [];
const standins: ClusterApiStandin[] = [];

beforeAll(async () => {
  t = await startTestController();
});

afterAll(async () => {
  await Promise.all(opened.map((n) => n.client.close()));
  await Promise.all(standins.map((s) => s.close()));
  await t?.close();
});

async function node(cluster: string, name: string, role: 'master' | 'worker'): Promise<TestNode> {
  const added = await addNode(t.admin, cluster, name, role);
  opened.push(added);
  return added;
}

/** A cluster whose leader has run init against the API server stand-in and reported joined. */
async function initializedCluster(spec: Parameters<typeof createCluster>[1] = {}) {
  const cluster = (await createLocalCluster(t.admin, spec)).id;
  const leader = await node(cluster, 'm1', 'master');
  const { init, api } = await initializedLeader(leader);
  standins.push(api);
  return { cluster, leader, init, api };
}

function storedSecrets(
  api: ClusterApiStandin,
): Record<string, { type: string; metadata: { name: string; namespace: string }; data: Record<string, string> }> {
  const dir = path.join(api.stateDir, 'secrets', 'kube-system');
  return Object.fromEntries(
    readdirSync(dir).map((file) => [file.replace(/\.json$/, ''), JSON.parse(readFileSync(path.join(dir, file), 'utf8'))]),
  );
}

describe('join before the cluster is initialized', () => {
  it('tells a worker "not-initialized" when the wait ends first', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const worker = await node(cluster, 'w1', 'worker');
    const at0 = await rejection(worker.client.join({}));
    expect(at0.context.status).toBe(409);
    expect(at0.code).toBe('not-initialized');
    const started = Date.now();
    const waited = await rejection(worker.client.join({}, { waitSeconds: 1 }));
    expect(waited.code).toBe('not-initialized');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(waited.message).toMatch(/POST \/v1\/clusters\/.+\/join: 409 not-initialized: .*not initialized after 1 s/);
  });

  it('gives the lease holder init material: a kubeadm token for 2 h, the CA hash openssl computes, the endpoint', async () => {
    const summary = await createCluster(t.admin, { controlPlaneEndpoint: { vip: '10.30.0.10', port: 6443 } });
    const leader = await node(summary.id, 'm1', 'master');
    const { epoch } = await leader.client.claimLeader({});
    const grant = await leader.client.join({ epoch });
    expect(grant.mode).toBe('init');
    expect(grant.token).toMatch(TOKEN);
    const ttl = Date.parse(grant.tokenExpiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(7190_000);
    expect(ttl).toBeLessThanOrEqual(7200_000);
    const pki = await leader.client.pki();
    expect(grant.caCertHash).toBe(await opensslCaHash(pki.files['ca.crt'] ?? ''));
    expect(grant.caCertHash).toBe(summary.caCertHash);
    expect(grant.endpoint).toBe('10.30.0.10:6443');
    // A rerun of the leader gets the same token back.
    expect((await leader.client.join({ epoch })).token).toBe(grant.token);
  });
});

describe('join once the cluster is initialized', () => {
  it('mints a fresh bootstrap token per worker as a bootstrap-token Secret, exactly as kubeadm writes it', async () => {
    const { cluster, api, init } = await initializedCluster();
    const worker = await node(cluster, 'w1', 'worker');
    const grant = await worker.client.join({});
    expect(grant.mode).toBe('join');
    expect(grant.token).toMatch(TOKEN);
    expect(grant.token).not.toBe(init.token);
    expect(grant.slot).toBeUndefined();
    const ttl = Date.parse(grant.tokenExpiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(890_000);
    expect(ttl).toBeLessThanOrEqual(900_000);

    const [id, secret] = grant.token.split('.');
    const stored = storedSecrets(api)[`bootstrap-token-${id}`];
    expect(stored).toBeDefined();
    expect(stored?.type).toBe('bootstrap.kubernetes.io/token');
    expect(stored?.metadata).toMatchObject({ name: `bootstrap-token-${id}`, namespace: 'kube-system' });
    const data = Object.fromEntries(Object.entries(stored?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    expect(data).toEqual({
      'token-id': id,
      'token-secret': secret,
      expiration: grant.tokenExpiresAt.replace(/\.\d{3}Z$/, 'Z'),
      'usage-bootstrap-authentication': 'true',
      'usage-bootstrap-signing': 'true',
      'auth-extra-groups': 'system:bootstrappers:kubeadm:default-node-token',
      description: expect.stringContaining('w1'),
    });
    expect(data.expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // Each join gets a token of its own.
    const again = await worker.client.join({});
    expect(again.token).not.toBe(grant.token);
    expect(Object.keys(storedSecrets(api))).toHaveLength(2);
  });

  it('gives the leader join material when it asks without its epoch (its rejoin after a restore), init material with it', async () => {
    const { leader, api, init } = await initializedCluster();
    const rejoin = await leader.client.join({});
    expect(rejoin.mode).toBe('join');
    expect(rejoin.token).not.toBe(init.token);
    expect(storedSecrets(api)[`bootstrap-token-${rejoin.token.split('.')[0]}`]).toBeDefined();
    const { epoch: held } = await leader.client.claimLeader({});
    expect((await leader.client.join({ epoch: held })).mode).toBe('init');
  });

  it('wakes workers waiting on join when the leader reports joined', async () => {
    const cluster = (await createLocalCluster(t.admin)).id;
    const leader = await node(cluster, 'm1', 'master');
    const workers = await Promise.all(['w1', 'w2', 'w3', 'w4', 'w5'].map((name) => node(cluster, name, 'worker')));
    const { epoch } = await leader.client.claimLeader({});
    await leader.client.join({ epoch });
    const waiting = workers.map((w) => w.client.join({}, { waitSeconds: 30 }).then((grant) => ({ grant, at: performance.now() })));
    await sleep(300);
    const api = await startClusterApi(leader);
    standins.push(api);
    await leader.client.joined({ epoch, adminKubeconfig: api.kubeconfig });
    const initializedAt = performance.now();
    const results = await Promise.all(waiting);
    expect(new Set(results.map((r) => r.grant.token)).size).toBe(5);
    // Each wake-up also creates a Secret through the API stand-in, so allow for that round trip.
    expect(Math.max(...results.map((r) => r.at - initializedAt))).toBeLessThan(1000);
    expect(Object.keys(storedSecrets(api))).toHaveLength(5);
  });

  it('mints the waiting control-plane node its token before the workers woken with it', async () => {
    const cluster = (await createLocalCluster(t.admin)).id;
    const leader = await node(cluster, 'm1', 'master');
    const workers = await Promise.all(['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((name) => node(cluster, name, 'worker')));
    const m2 = await node(cluster, 'm2', 'master');
    const { epoch } = await leader.client.claimLeader({});
    await leader.client.join({ epoch });
    const arrival = (grant: Promise<unknown>) => grant.then(() => performance.now());
    // The workers ask first, so that they are woken first.
    const workersGranted = workers.map((w) => arrival(w.client.join({}, { waitSeconds: 30 })));
    await sleep(200);
    const m2Granted = arrival(m2.client.join({}, { waitSeconds: 30 }));
    await sleep(300);
    const api = await startClusterApi(leader);
    standins.push(api);
    await leader.client.joined({ epoch, adminKubeconfig: api.kubeconfig });
    const [m2At, ...workerAts] = await Promise.all([m2Granted, ...workersGranted]);
    expect(m2At).toBeLessThan(Math.min(...workerAts));
    expect(Object.keys(storedSecrets(api))).toHaveLength(7);
  });

  it('lets one control-plane node join at a time, and frees the slot when it reports joined', async () => {
    const { cluster } = await initializedCluster();
    const [m2, m3] = [await node(cluster, 'm2', 'master'), await node(cluster, 'm3', 'master')];
    const first = await m2.client.join({});
    expect(first.slot?.holder).toBe('m2');
    const busy = await rejection(m3.client.join({}));
    expect(busy.code).toBe('slot-busy');
    expect(busy.message).toContain('m2');
    // m2 asking again (a rerun) keeps its slot and gets a new token.
    const rerun = await m2.client.join({});
    expect(rerun.slot).toEqual(first.slot);
    expect(rerun.token).not.toBe(first.token);

    const waiting = m3.client.join({}, { waitSeconds: 20 });
    await sleep(300);
    expect((await t.admin.status(cluster)).joinSlot?.holder).toBe('m2');
    await m2.client.joined({});
    const granted = await waiting;
    expect(granted.slot?.holder).toBe('m3');
    expect((await t.admin.status(cluster)).joinSlot?.holder).toBe('m3');
  });

  it('frees the slot when its lease runs out', async () => {
    const { cluster } = await initializedCluster({ joinSlotTtlSeconds: 1 });
    const [m2, m3] = [await node(cluster, 'm2', 'master'), await node(cluster, 'm3', 'master')];
    const first = await m2.client.join({});
    const started = Date.now();
    const second = await m3.client.join({}, { waitSeconds: 10 });
    expect(second.slot?.holder).toBe('m3');
    const late = Date.now() - Date.parse(first.slot?.expiresAt ?? '');
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(500);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('answers 503 with the reason when the cluster API cannot be reached', async () => {
    const { cluster, api } = await initializedCluster();
    const worker = await node(cluster, 'w1', 'worker');
    await api.standin.close();
    const error = await rejection(worker.client.join({}));
    expect(error.context.status).toBe(503);
    expect(error.code).toBe('cluster-api-unavailable');
    expect(error.message).toContain(api.standin.url);
    expect(error.message).toMatch(/ECONNREFUSED|connect/);
  });
});

describe('joined and ready', () => {
  it('refuses both from a node never granted init or join, and status never shows it ready', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const worker = await node(cluster, 'w1', 'worker');
    const joined = await rejection(worker.client.joined({}));
    expect({ status: joined.context.status, code: joined.code }).toEqual({ status: 409, code: 'conflict' });
    expect(joined.message).toContain('never granted');
    expect((await rejection(worker.client.ready({}))).context.status).toBe(409);
    const shown = (await t.admin.status(cluster)).nodes.find((n) => n.name === 'w1');
    expect(shown?.state).not.toBe('ready');
    expect(shown?.joinedAt).toBeUndefined();
  });
});

describe('revocation and the lease epoch', () => {
  it('gives a new lease epoch a new init token, and ends the revoked holder lease at once', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [m1, m2] = [await node(cluster, 'm1', 'master'), await node(cluster, 'm2', 'master')];
    const first = await m1.client.claimLeader({});
    expect(first.init?.token).toMatch(TOKEN);
    await t.admin.revoke(cluster, { node: 'm1' });
    const second = await m2.client.claimLeader({});
    expect({ granted: second.granted, epoch: second.epoch }).toEqual({ granted: true, epoch: first.epoch + 1 });
    expect(second.init?.token).toMatch(TOKEN);
    expect(second.init?.token).not.toBe(first.init?.token);
    // The new holder asking again within its epoch (a rerun) gets its own token back.
    expect((await m2.client.join({ epoch: second.epoch })).token).toBe(second.init?.token);
  });

  it('deletes the join token it minted for a node revoked by name', async () => {
    const { cluster, api } = await initializedCluster();
    const worker = await node(cluster, 'w1', 'worker');
    const grant = await worker.client.join({});
    const secret = `bootstrap-token-${grant.token.split('.')[0]}`;
    expect(Object.keys(storedSecrets(api))).toContain(secret);
    await t.admin.revoke(cluster, { node: 'w1' });
    expect(Object.keys(storedSecrets(api))).not.toContain(secret);
  });
});
