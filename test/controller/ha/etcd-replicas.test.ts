import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../../agent/controller/store/secret-box.ts';
import type { AgentConfig } from '../../../agent/config/schema.ts';
import { AdminClient, createNodeClient, type NodeClient, type RetryOptions } from '../../../agent/protocol/client.ts';
import { ControllerRequestError } from '../../../agent/protocol/errors.ts';
import { scratchDir } from '../../helpers/cli.ts';
import { controllerEtcdFlags, etcdBinary, startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.ts';
import {
  NO_RETRY,
  agentConfigOf,
  createLocalCluster,
  killProcess,
  registration,
  spawnController,
  startClusterApi,
  type ClusterApiStandin,
  type ControllerProcess,
} from '../helpers.ts';

/**
 * Controller replicas on a real three-member etcd cluster (TLS, client certificates), each
 * replica the real CLI in its own process.
 */

/** What a node does when a replica answers 503 (a lost race it could not settle): ask again soon. */
const RETRY_SOON: Partial<RetryOptions> = { retries: 10, minDelayMs: 20, maxDelayMs: 200 };

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Replica {
  proc: ControllerProcess;
  admin: AdminClient;
}

async function startReplica(etcd: EtcdCluster, prefix: string, secretKeyFile = etcd.secretKeyFile, extra: string[] = []): Promise<Replica> {
  const data = scratchDir('replica');
  const proc = await spawnController(data.dir, 0, [...extra, ...controllerEtcdFlags(etcd, prefix, secretKeyFile)]);
  const admin = new AdminClient({ url: proc.url, caCert: proc.caCertPem, token: proc.adminToken, retry: NO_RETRY });
  cleanups.push(async () => {
    await admin.close();
    await killProcess(proc.child);
    data.remove();
  });
  return { proc, admin };
}

/** The node's client, talking to `replica` whatever URL its config names. */
function clientVia(config: AgentConfig, replica: Replica, retry: Partial<RetryOptions> = RETRY_SOON): NodeClient {
  const client = createNodeClient({ ...config, controller: { ...config.controller, url: replica.proc.url } }, { retry });
  cleanups.push(() => client.close());
  return client;
}

async function renderAll(admin: AdminClient, cluster: string, names: string[], role: 'master' | 'worker'): Promise<AgentConfig[]> {
  const configs: AgentConfig[] = [];
  for (const name of names) configs.push(agentConfigOf(await admin.nodeConfig(cluster, { name, role })));
  return configs;
}

const outcome = <T>(promise: Promise<T>) =>
  promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

let prefixes = 0;
const freshPrefix = () => `/test-${process.pid}-${(prefixes += 1)}/`;

describe.skipIf(!etcdBinary())('controller replicas on etcd', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcdCluster();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });

  it('share one serving CA, admin token and state, and keep secrets sealed in etcd', async () => {
    const prefix = freshPrefix();
    const [a, b] = await Promise.all([startReplica(etcd, prefix), startReplica(etcd, prefix)]);
    expect(b.proc.caCertPem).toBe(a.proc.caCertPem);
    expect(b.proc.adminToken).toBe(a.proc.adminToken);
    const cluster = await createLocalCluster(a.admin);
    expect((await b.admin.listClusters()).clusters.map((c) => c.id)).toContain(cluster.id);
    // A cluster made through one replica serves its PKI through the other.
    const [config] = await renderAll(b.admin, cluster.id, ['m1'], 'master');
    const pki = await clientVia(config as AgentConfig, a).pki();
    expect(pki.files['ca.key']).toMatch(/PRIVATE KEY/);

    const secrets = await etcd.client().getAll().prefix(`${prefix}secret/`).strings();
    expect(Object.keys(secrets).map((key) => key.slice(prefix.length))).toEqual(
      expect.arrayContaining(['secret/serving-ca', 'secret/signing-key', 'secret/admin-token', `secret/clusters/${cluster.id}/pki`]),
    );
    for (const value of Object.values(secrets)) {
      expect(value).toMatch(/^v1\.[0-9a-f]{16}\./);
      expect(value).not.toMatch(/PRIVATE KEY|BEGIN/);
    }
    expect(Object.values(secrets).join('')).not.toContain(a.proc.adminToken);
  }, 60_000);

  it('render node configs that carry every replica URL, the guestinfo still under 4 KiB', async () => {
    const peers = ['https://controller-2.example.net:9443', 'https://controller-3.example.net:9443'];
    const replica = await startReplica(
      etcd,
      freshPrefix(),
      etcd.secretKeyFile,
      peers.flatMap((url) => ['--peer-url', url]),
    );
    const cluster = await createLocalCluster(replica.admin);
    const rendered = await replica.admin.nodeConfig(cluster.id, { name: 'a-rather-long-worker-name-0001', role: 'worker' });
    const config = agentConfigOf(rendered);
    expect(config.controller.url).toBe(replica.proc.url);
    expect(config.controller.otherUrls).toEqual(peers);
    expect(rendered.encodedBytes).toBeLessThan(4096);
  }, 60_000);

  it('re-seal the secrets with a new key put first in the key file, after which the old key can go', async () => {
    const prefix = freshPrefix();
    const first = await startReplica(etcd, prefix);
    const oldKey = readFileSync(etcd.secretKeyFile, 'utf8');
    const newKey = SecretBox.newKeyFileText();
    const both = path.join(etcd.dir, `rotate-${prefix.replaceAll('/', '')}.key`);
    writeFileSync(both, `${newKey}${oldKey}`, { mode: 0o600 });
    await startReplica(etcd, prefix, both);
    const onlyNew = path.join(etcd.dir, `new-${prefix.replaceAll('/', '')}.key`);
    writeFileSync(onlyNew, newKey, { mode: 0o600 });
    const last = await startReplica(etcd, prefix, onlyNew);
    expect(last.proc.adminToken).toBe(first.proc.adminToken);
    expect(last.proc.caCertPem).toBe(first.proc.caCertPem);
  }, 60_000);

  it('grant the lease once and the join slot once to 200 nodes racing through two replicas', async () => {
    const prefix = freshPrefix();
    const [a, b] = await Promise.all([startReplica(etcd, prefix), startReplica(etcd, prefix)]);
    const cluster = (await createLocalCluster(a.admin)).id;
    const names = Array.from({ length: 200 }, (_, i) => `m${i + 1}`);
    const configs = await renderAll(a.admin, cluster, names, 'master');
    const clients = configs.map((config, i) => clientVia(config, i % 2 === 0 ? a : b));

    const claims = await Promise.all(clients.map((client) => outcome(client.claimLeader({}))));
    expect(claims.filter((c) => !c.ok)).toEqual([]);
    const granted = claims.flatMap((c, i) => (c.ok && c.value.granted ? [{ i, epoch: c.value.epoch }] : []));
    expect(granted).toHaveLength(1);
    const leader = granted[0] as { i: number; epoch: number };
    // Every answer names the same holder and epoch: the one the winner got.
    for (const c of claims)
      if (c.ok) expect({ holder: c.value.holder, epoch: c.value.epoch }).toEqual({ holder: names[leader.i], epoch: 1 });

    const leaderClient = clients[leader.i] as NodeClient;
    await leaderClient.join({ epoch: leader.epoch });
    const api: ClusterApiStandin = await startClusterApi({
      name: names[leader.i] as string,
      config: configs[leader.i] as AgentConfig,
      tokenId: '',
      client: leaderClient,
    });
    cleanups.push(() => api.close());
    await leaderClient.joined({ epoch: leader.epoch, adminKubeconfig: api.kubeconfig });

    const others = clients.filter((_, i) => i !== leader.i);
    const joins = await Promise.all(others.map((client) => outcome(client.join({}, { waitSeconds: 1 }))));
    const grants = joins.filter((j) => j.ok);
    expect(grants).toHaveLength(1);
    const refusals = joins.flatMap((j) => (j.ok ? [] : [j.error]));
    for (const error of refusals) {
      expect(error).toBeInstanceOf(ControllerRequestError);
      expect((error as ControllerRequestError).code).toBe('slot-busy');
    }
  }, 180_000);

  it('keep every write acknowledged by a replica SIGKILLed under 200 concurrent writes', async () => {
    const prefix = freshPrefix();
    const [a, b] = await Promise.all([startReplica(etcd, prefix), startReplica(etcd, prefix)]);
    const cluster = (await createLocalCluster(a.admin)).id;
    const names = Array.from({ length: 200 }, (_, i) => `w${i + 1}`);
    const configs = await renderAll(a.admin, cluster, names, 'worker');
    const acknowledged = new Set<string>();
    let killed: Promise<unknown> | undefined;
    await Promise.all(
      configs.map(async (config, i) => {
        const client = clientVia(config, i % 2 === 0 ? a : b, NO_RETRY);
        const answer = await outcome(client.register(registration(names[i] as string)));
        if (!answer.ok) return;
        acknowledged.add(names[i] as string);
        if (acknowledged.size === 60) killed = killProcess(a.proc.child);
      }),
    );
    await killed;
    expect(acknowledged.size).toBeGreaterThanOrEqual(60);
    expect(a.proc.child.signalCode).toBe('SIGKILL');

    // The survivor, and a replica started afresh from etcd, both have every acknowledged registration.
    const c = await startReplica(etcd, prefix);
    for (const replica of [b, c]) {
      const status = await replica.admin.status(cluster);
      const registered = new Set(status.nodes.filter((n) => n.state === 'registered').map((n) => n.name));
      expect([...acknowledged].filter((name) => !registered.has(name))).toEqual([]);
    }
  }, 180_000);
});

describe.skipIf(!etcdBinary())('a controller on an etcd cluster losing members', () => {
  it('keeps working with two of three members, answers writes 503 with one, and is whole again after', async () => {
    const etcd = await startEtcdCluster();
    cleanups.push(() => etcd.stop());
    const replica = await startReplica(etcd, freshPrefix());
    const cluster = (await createLocalCluster(replica.admin)).id;
    const names = ['n1', 'n2', 'n3'];
    const configs = await renderAll(replica.admin, cluster, names, 'worker');
    const [n1, n2] = configs.map((config) => clientVia(config, replica, NO_RETRY)) as [NodeClient, NodeClient];

    await etcd.kill(0);
    await n1.register(registration('n1'));

    await etcd.kill(1);
    const started = performance.now();
    const refused = await outcome(n2.register(registration('n2')));
    const tookMs = performance.now() - started;
    expect(refused.ok).toBe(false);
    const error = (refused as { error: ControllerRequestError }).error;
    expect(error).toBeInstanceOf(ControllerRequestError);
    expect({ status: error.context.status, code: error.code }).toEqual({ status: 503, code: 'store-unavailable' });
    expect(error.message).toMatch(/etcd/);
    expect(tookMs).toBeLessThan(30_000);
    // Reads are served from the replica's copy meanwhile.
    expect((await replica.admin.status(cluster)).nodes.find((n) => n.name === 'n1')?.state).toBe('registered');

    await etcd.restart(0);
    await etcd.restart(1);
    // Once etcd has quorum again, the refused write goes through when the node asks again.
    const n3again = clientVia(configs[2] as AgentConfig, replica, { retries: 30, minDelayMs: 200, maxDelayMs: 1000 });
    await n3again.register(registration('n3'));
    const n2again = clientVia(configs[1] as AgentConfig, replica, { retries: 30, minDelayMs: 200, maxDelayMs: 1000 });
    await n2again.register(registration('n2'));

    // Nothing half-written: every registration has its own place in the cluster's count.
    const fresh = await startReplica(etcd, (await firstPrefix(etcd)) ?? '');
    const status = await fresh.admin.status(cluster);
    expect(
      status.nodes
        .filter((n) => n.state === 'registered')
        .map((n) => n.name)
        .sort(),
    ).toEqual(['n1', 'n2', 'n3']);
  }, 180_000);
});

/** The one prefix the controller wrote under (this describe's etcd holds one). */
async function firstPrefix(etcd: EtcdCluster): Promise<string | undefined> {
  const keys = await etcd.client().getAll().prefix('/test-').keys();
  return keys[0]?.replace(/(\/test-[^/]+\/).*/, '$1');
}
