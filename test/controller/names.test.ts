import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTestController } from './fixture.ts';
import { addNode, createCluster, rejection } from './helpers.ts';

/** Names from outside are keys like any other: none resolves to an object built-in. */

const fixture = useTestController();

describe('names that are object built-ins', () => {
  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty'])(
    'answers 404 for a cluster named %s that does not exist',
    async (name) => {
      const error = await rejection(fixture.t.admin.showCluster(name));
      expect({ status: error.context.status, code: error.code }).toEqual({ status: 404, code: 'not-found' });
    },
  );

  it('creates a cluster and a node named constructor', async () => {
    const cluster = await createCluster(fixture.t.admin, { name: 'constructor' });
    expect(cluster.name).toBe('constructor');
    fixture.track(await addNode(fixture.t.admin, cluster.id, 'constructor', 'worker'));
    expect((await fixture.t.admin.status(cluster.id)).nodes.map((n) => n.name)).toEqual(['constructor']);
  });

  it('writes no vCenter connection for a cluster that does not exist', async () => {
    const error = await rejection(
      fixture.t.admin.setVsphere('hasOwnProperty', { server: 'vc.example.net', username: 'u', password: 'p', datacenters: ['DC0'] }),
    );
    expect(error.context.status).toBe(404);
    expect(existsSync(path.join(fixture.t.dataDir, 'clusters', 'undefined'))).toBe(false);
  });
});

describe('internal errors', () => {
  it('answers 500 without the internal error text', async () => {
    const cluster = (await createCluster(fixture.t.admin)).id;
    const leader = fixture.track(await addNode(fixture.t.admin, cluster, 'm1', 'master'));
    await leader.client.claimLeader({});
    await writeFile(path.join(fixture.t.dataDir, 'clusters', cluster, 'vsphere.json'), '{"server": "vc', { mode: 0o600 });
    const error = await rejection(leader.client.vsphere());
    expect({ status: error.context.status, code: error.code }).toEqual({ status: 500, code: 'internal' });
    expect(error.message).not.toMatch(/JSON|Unterminated|position/i);
  });
});
