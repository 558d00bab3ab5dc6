import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../agent/core/log.ts';
import { startController, type RunningController } from '../../agent/controller/controller.ts';
import type { NodeMachines } from '../../agent/controller/day-two/machines.ts';
import { kubeApiConnection } from '../../agent/kube/api-client.ts';
import { parseAdminKubeconfig } from '../../agent/controller/kubernetes/cluster-api.ts';
import { request } from '../../agent/net/https.ts';
import type { NodeStatus } from '../../agent/protocol/api.ts';
import { AdminClient } from '../../agent/protocol/client.ts';
import { scratchDir } from '../helpers/cli.ts';
import { NO_RETRY, addNode, createLocalCluster, registration, startClusterApi, type ClusterApiStandin, type TestNode } from './helpers.ts';

/**
 * A removal survives the controller: stopped in the middle of a drain (a budget holds a pod),
 * the controller comes back from its data dir and resumes the removal at that step, without
 * being asked again. The cluster's API is the stand-in (its budgets act out the real Eviction
 * API's, see drain.test.ts).
 */

const data = scratchDir('removal-resume');
const opened: { close(): Promise<unknown> }[] = [];
afterAll(async () => {
  for (const item of opened.reverse()) await item.close();
  data.remove();
});

/** The VMs "provisioned" by the controller, as the vSphere provisioning (issue #15) will report and destroy them. */
const destroyed: string[] = [];
const machines: NodeMachines = {
  owns: async (_cluster, node) => node === 'w1',
  destroy: async (cluster, node) => {
    destroyed.push(`${cluster}/${node}`);
  },
};

async function controller(): Promise<{ running: RunningController; admin: AdminClient }> {
  const running = await startController({
    dataDir: data.dir,
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
    verifyStateTouches: true,
    machines,
  });
  const admin = new AdminClient({
    url: running.url,
    caCert: running.caCertPem,
    token: (await readFile(running.adminTokenFile, 'utf8')).trim(),
    retry: NO_RETRY,
  });
  return { running, admin };
}

describe('a node removal across a controller restart', () => {
  it('resumes at the step it was in, and destroys the VM the controller provisioned', async () => {
    const first = await controller();
    const cluster = (await createLocalCluster(first.admin)).id;
    const leader: TestNode = await addNode(first.admin, cluster, 'm1', 'master');
    const worker: TestNode = await addNode(first.admin, cluster, 'w1', 'worker');
    opened.push(leader.client, worker.client);
    await worker.client.register(registration('w1', '10.10.0.21'));
    const { epoch } = await leader.client.claimLeader({});
    const api: ClusterApiStandin = await startClusterApi(leader);
    opened.push(api);
    await leader.client.joined({ epoch, adminKubeconfig: api.kubeconfig });

    // w1 is a Node with one pod that a budget (minAvailable 1) protects: its eviction is refused until another runs.
    const nodesDir = path.join(api.stateDir, 'nodes');
    mkdirSync(nodesDir, { recursive: true });
    for (const name of ['m1', 'w1'])
      writeFileSync(path.join(nodesDir, `${name}.json`), JSON.stringify({ registeredAt: '2026-12-06T10:00:00Z' }));
    const connection = kubeApiConnection(parseAdminKubeconfig(api.kubeconfig));
    opened.push(connection.pool);
    const post = async (pathname: string, body: unknown) => {
      const answer = await request(`${api.standin.url}${pathname}`, {
        pool: connection.pool,
        method: 'POST',
        headers: { ...connection.headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        timeoutMs: 5000,
      });
      expect(answer.statusCode).toBe(201);
    };
    const pod = (name: string, nodeName: string) => ({
      metadata: { name, labels: { app: 'web' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'web-1', controller: true }] },
      spec: { nodeName },
    });
    await post('/apis/policy/v1/namespaces/shop/poddisruptionbudgets', {
      metadata: { name: 'web' },
      spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } },
    });
    await post('/api/v1/namespaces/shop/pods', pod('web-a', 'w1'));

    await first.admin.removeNode(cluster, { node: 'w1', timeoutSeconds: 600 });
    const drainRunning = async (admin: AdminClient) => {
      for (let i = 0; i < 200; i += 1) {
        const w1 = (await admin.status(cluster)).nodes.find((n) => n.name === 'w1');
        if (w1?.removal?.step === 'drain') return w1;
        await sleep(50);
      }
      throw new Error('the removal never reached its drain');
    };
    const before = await drainRunning(first.admin);
    expect(before.removal?.steps.map((s) => [s.name, s.state])).toEqual([
      ['quorum', 'skipped'],
      ['drain', 'running'],
    ]);
    await first.admin.close();
    await first.running.close();

    // Back from the same data dir: the drain goes on by itself, and ends once the budget allows.
    const second = await controller();
    opened.push(second.admin, second.running);
    const resumed = await drainRunning(second.admin);
    expect(resumed.removal?.state).toBe('running');
    await post('/api/v1/namespaces/shop/pods', pod('web-b', 'm1'));
    let done: NodeStatus | undefined;
    for (let i = 0; i < 400 && done?.state !== 'removed'; i += 1) {
      await sleep(50);
      done = (await second.admin.status(cluster)).nodes.find((n) => n.name === 'w1');
    }
    expect(done?.state).toBe('removed');
    // The controller made w1's VM (so says its provisioning): it is destroyed, once.
    expect(done?.removal?.steps.find((s) => s.name === 'destroy-vm')).toMatchObject({
      state: 'done',
      note: 'VM powered off and destroyed',
    });
    expect(destroyed).toEqual([`${cluster}/w1`]);
    expect(done?.removal?.steps.find((s) => s.name === 'drain')).toMatchObject({
      state: 'done',
      note: 'evicted 1, deleted 0, left 0 (DaemonSet and mirror pods)',
    });
  }, 60_000);
});
