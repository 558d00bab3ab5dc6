import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../agent/core/log.ts';
import { adminKubeconfig, apiServerCredentials } from '../standins/apiserver-standin.ts';
import {
  acceptedKubeconfig,
  addNode,
  createCluster,
  createLocalCluster,
  rejection,
  startTestController,
  type TestController,
  type TestNode,
} from './helpers.ts';

/** The leader's admin.conf: the controller sends requests where it points, so it takes it only for its cluster, once. */

let t: TestController;
const logs: string[] = [];
const opened: TestNode[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  t = await startTestController({ log: createLogger({ json: false, write: (line) => logs.push(line) }) });
});

afterAll(async () => {
  await Promise.all(opened.map((n) => n.client.close()));
  for (const server of servers) server.close();
  await t?.close();
});

async function leaderOf(cluster: string): Promise<TestNode> {
  const leader = await addNode(t.admin, cluster, 'm1', 'master');
  opened.push(leader);
  await leader.client.claimLeader({});
  return leader;
}

describe('the leader admin.conf', () => {
  it("refuses one whose CA is not the cluster's, or whose server is not the cluster endpoint", async () => {
    const cluster = (await createCluster(t.admin)).id;
    const leader = await leaderOf(cluster);
    const other = (await createCluster(t.admin)).id;
    const otherLeader = await leaderOf(other);
    const { vip, port } = leader.config.controlPlaneEndpoint;
    const ca = (await leader.client.pki()).files['ca.crt'] ?? '';
    const client = { certPem: 'cert', keyPem: 'key' };
    for (const [text, reason] of [
      [adminKubeconfig(`https://${vip}:${port}`, (await otherLeader.client.pki()).files['ca.crt'] ?? '', client), "not this cluster's CA"],
      [adminKubeconfig(`https://198.51.100.7:${port}`, ca, client), `not the cluster's endpoint https://${vip}:${port}`],
      [adminKubeconfig(`https://${vip}:${port + 1}`, ca, client), 'endpoint'],
      [adminKubeconfig(`https://${vip}:${port}/elsewhere`, ca, client), 'endpoint'],
    ] as const) {
      const error = await rejection(leader.client.joined({ adminKubeconfig: text }));
      expect({ status: error.context.status, field: error.field }).toEqual({ status: 400, field: 'adminKubeconfig' });
      expect(error.message).toContain(reason);
    }
    expect((await t.admin.status(cluster)).leader.initialized).toBe(false);
  });

  it('takes it once: the same text again changes nothing, another is refused', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const leader = await leaderOf(cluster);
    const text = await acceptedKubeconfig(leader);
    await leader.client.joined({ adminKubeconfig: text });
    await leader.client.joined({ adminKubeconfig: text });
    const swapped = text.replace('kubernetes-admin', 'kubernetes-admin2');
    const error = await rejection(leader.client.joined({ adminKubeconfig: swapped }));
    expect({ status: error.context.status, code: error.code }).toEqual({ status: 409, code: 'conflict' });
  });

  it("never passes the cluster API's answer on to a node, and logs a bounded excerpt", async () => {
    const cluster = await createLocalCluster(t.admin);
    const leader = await leaderOf(cluster.id);
    const ca = { certPem: (await leader.client.pki()).files['ca.crt'] ?? '', keyPem: (await leader.client.pki()).files['ca.key'] ?? '' };
    const { serving, admin } = await apiServerCredentials(ca);
    // An "API server" at the endpoint that refuses, saying more than a node should hear.
    const marker = `internal-detail-${'x'.repeat(500)}`;
    const server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', message: `\u001b[2J${marker}` }));
    });
    servers.push(server);
    const { vip, port } = cluster.spec.controlPlaneEndpoint;
    await new Promise<void>((resolve) => server.listen(port, vip, resolve));
    expect((server.address() as AddressInfo).port).toBe(port);
    await leader.client.joined({ adminKubeconfig: adminKubeconfig(`https://${vip}:${port}`, ca.certPem, admin) });

    const worker = await addNode(t.admin, cluster.id, 'w1', 'worker');
    opened.push(worker);
    const error = await rejection(worker.client.join({}));
    expect({ status: error.context.status, code: error.code }).toEqual({ status: 503, code: 'cluster-api-unavailable' });
    expect(error.message).toContain('answered 403');
    expect(error.message).not.toContain('internal-detail');
    const logged = logs.find((line) => line.includes('join.token.failed')) ?? '';
    expect(logged).toContain('internal-detail-xxx');
    expect(logged).not.toContain('x'.repeat(300));
    expect(logged).not.toContain('\u001b');
  });
});
