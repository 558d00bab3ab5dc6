import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addNode, createCluster, rejection, startTestController, type TestController, type TestNode } from './helpers.ts';

/** Names from outside are keys like any other: none resolves to an object built-in. */

let t: TestController;
const opened: TestNode[] = [];

beforeAll(async () => {
  t = await startTestController();
});

afterAll(async () => {
  await Promise.all(opened.map((n) => n.client.close()));
  await t?.close();
});

describe('names that are object built-ins', () => {
  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty'])('answers 404 for a cluster named %s that does not exist', async (name) => {
    const error = await rejection(t.admin.showCluster(name));
    expect({ status: error.context.status, code: error.code }).toEqual({ status: 404, code: 'not-found' });
  });

  it('creates a cluster and a node named constructor', async () => {
    const cluster = await createCluster(t.admin, { name: 'constructor' });
    expect(cluster.name).toBe('constructor');
    const node = await addNode(t.admin, cluster.id, 'constructor', 'worker');
    opened.push(node);
    expect((await t.admin.status(cluster.id)).nodes.map((n) => n.name)).toEqual(['constructor']);
  });

  it('writes no vCenter connection for a cluster that does not exist', async () => {
    const error = await rejection(t.admin.setVsphere('hasOwnProperty', { server: 'vc.example.net', username: 'u', password: 'p', datacenters: ['DC0'] }));
    expect(error.context.status).toBe(404);
    expect(existsSync(path.join(t.dataDir, 'clusters', 'undefined'))).toBe(false);
  });
});

describe('internal errors', () => {
  it('answers 500 without the internal error text', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const leader = await addNode(t.admin, cluster, 'm1', 'master');
    opened.push(leader);
    await leader.client.claimLeader({});
    await writeFile(path.join(t.dataDir, 'clusters', cluster, 'vsphere.json'), '{"server": "vc', { mode: 0o600 });
    const error = await rejection(leader.client.vsphere());
    expect({ status: error.context.status, code: error.code }).toEqual({ status: 500, code: 'internal' });
    expect(error.message).not.toMatch(/JSON|Unterminated|position/i);
  });
});
