import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { httpsClusterApi, parseAdminKubeconfig, type ClusterApi } from '../../agent/controller/kubernetes/cluster-api.ts';
import { DrainError, drainNode, type DrainEvent } from '../../agent/controller/kubernetes/drain.ts';
import { kubeApiConnection } from '../../agent/kube/api-client.ts';
import { request } from '../../agent/net/https.ts';
import { scratchDir } from '../helpers/cli.ts';
import { controlPlaneBinaries, startApiServer, startEtcd, type RealApiServer, type RealEtcd } from '../helpers/real-control-plane.ts';

/**
 * The drain against the real kube-apiserver and the real disruption controller (which keeps each
 * PodDisruptionBudget's `disruptionsAllowed`, what the Eviction API decides on). No kubelet runs:
 * the test plays it (a pod runs and is Ready when the test says so; a pod whose deletion began is
 * confirmed gone), and plays the ReplicaSet controller where a replacement is needed.
 */
const skip = controlPlaneBinaries.available ? undefined : controlPlaneBinaries.reason;
if (skip) console.warn(`real-API drain tests skipped: ${skip}`);

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON read back for assertions
type Json = Record<string, any>;

describe.skipIf(skip)('drainNode against the real kube-apiserver', () => {
  const dir = scratchDir('drain-real');
  let etcd: RealEtcd | undefined;
  let server: RealApiServer | undefined;
  let api: ClusterApi;
  let call: (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    pathname: string,
    body?: unknown,
    type?: string,
  ) => Promise<{ code: number; json: Json }>;
  let kubelet: Promise<void> | undefined;
  let stopKubelet = false;

  beforeAll(async () => {
    const pki = await createClusterPki();
    etcd = await startEtcd(dir.dir, pki, ['e1']);
    server = await startApiServer(dir.dir, pki, etcd, ['disruption']);
    const kubeconfig = parseAdminKubeconfig(server.kubeconfig);
    api = httpsClusterApi(kubeconfig);
    const connection = kubeApiConnection(kubeconfig);
    const url = server.url;
    call = async (method, pathname, body, type = 'application/json') => {
      const answer = await request(`${url}${pathname}`, {
        pool: connection.pool,
        method,
        headers: { ...connection.headers, 'content-type': type },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: 10_000,
      });
      return { code: answer.statusCode, json: JSON.parse(answer.text) as Json };
    };
    for (const name of ['w1', 'w2']) expect((await call('POST', '/api/v1/nodes', { metadata: { name } })).code).toBe(201);
    expect((await call('POST', '/api/v1/namespaces', { metadata: { name: 'shop' } })).code).toBe(201);
    // What the serviceaccount controller would make, which admission wants before any pod.
    expect((await call('POST', '/api/v1/namespaces/shop/serviceaccounts', { metadata: { name: 'default' } })).code).toBe(201);
    // The kubelet's part in a pod's deletion: it stops the containers and confirms (grace period 0).
    kubelet = (async () => {
      while (!stopKubelet) {
        const pods = (await call('GET', '/api/v1/namespaces/shop/pods')).json.items as Json[];
        for (const pod of pods.filter((p) => p.metadata.deletionTimestamp))
          await call('DELETE', `/api/v1/namespaces/shop/pods/${pod.metadata.name}?gracePeriodSeconds=0`);
        await sleep(100);
      }
    })();
  }, 120_000);

  afterAll(async () => {
    stopKubelet = true;
    await kubelet;
    await api?.close();
    await server?.close();
    await etcd?.close();
    dir.remove();
  });

  async function runningPod(name: string, node: string, owner: { kind: string; name: string } = { kind: 'ReplicaSet', name: 'web-5d8f' }) {
    const created = await call('POST', '/api/v1/namespaces/shop/pods', {
      metadata: {
        name,
        labels: { app: owner.kind === 'DaemonSet' ? 'logs' : 'web' },
        ownerReferences: [{ apiVersion: 'apps/v1', ...owner, uid: '00000000-0000-0000-0000-000000000001', controller: true }],
      },
      spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10.2' }] },
    });
    expect(created.code, JSON.stringify(created.json)).toBe(201);
    const status = await call(
      'PATCH',
      `/api/v1/namespaces/shop/pods/${name}/status`,
      { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } },
      'application/merge-patch+json',
    );
    expect(status.code, JSON.stringify(status.json)).toBe(200);
  }

  async function budgetAllows(name: string, disruptions: number) {
    for (let i = 0; i < 300; i += 1) {
      const budget = (await call('GET', `/apis/policy/v1/namespaces/shop/poddisruptionbudgets/${name}`)).json;
      if (budget.status?.disruptionsAllowed === disruptions && budget.status?.observedGeneration === budget.metadata.generation) return;
      await sleep(100);
    }
    throw new Error(`budget ${name} never allowed ${disruptions} disruptions`);
  }

  const names = async (node: string) => (await api.listNodePods(node)).map((pod) => pod.name).sort();

  it('evicts within the budget, waits for it, leaves DaemonSet pods, and cordons', async () => {
    const budget = { metadata: { name: 'web' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } };
    expect((await call('POST', '/apis/policy/v1/namespaces/shop/poddisruptionbudgets', budget)).code).toBe(201);
    await runningPod('web-a', 'w1');
    await runningPod('web-b', 'w1');
    await runningPod('logs-w1', 'w1', { kind: 'DaemonSet', name: 'logs' });
    await budgetAllows('web', 1);

    const events: DrainEvent[] = [];
    let replaced: Promise<void> | undefined;
    const result = await drainNode(api, 'w1', {
      force: false,
      timeoutMs: 60_000,
      retryMs: 500,
      pollMs: 200,
      onEvent: (event) => {
        events.push(event);
        // The ReplicaSet controller's part: a replacement on w2, Ready, frees the budget again.
        if (event.event === 'blocked') replaced ??= runningPod('web-c', 'w2');
      },
    });
    await replaced;
    expect(result).toMatchObject({ nodeFound: true, deleted: [], skipped: ['shop/logs-w1'] });
    expect(result.evicted.sort()).toEqual(['shop/web-a', 'shop/web-b']);
    const blocked = events.find((event) => event.event === 'blocked');
    expect(blocked).toMatchObject({ message: "Cannot evict pod as it would violate the pod's disruption budget." });
    expect(await names('w1')).toEqual(['logs-w1']);
    expect(await names('w2')).toEqual(['web-c']);
    expect((await call('GET', '/api/v1/nodes/w1')).json.spec.unschedulable).toBe(true);
  }, 120_000);

  it('times out on a budget that never allows, names the pod; --force deletes it; the Node is deleted', async () => {
    // web-c on w2 is the only pod of budget "web" (minAvailable 1) now.
    await budgetAllows('web', 0);
    const failure = await drainNode(api, 'w2', { force: false, timeoutMs: 1500, retryMs: 300, pollMs: 100 }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(DrainError);
    expect((failure as DrainError).blocked).toEqual(['shop/web-c']);
    expect((failure as Error).message).toContain(
      "evictions still refused for shop/web-c (Cannot evict pod as it would violate the pod's disruption budget.)",
    );
    expect(await names('w2')).toEqual(['web-c']);

    const forced = await drainNode(api, 'w2', { force: true, timeoutMs: 1000, retryMs: 300, pollMs: 100 });
    expect(forced.deleted).toEqual(['shop/web-c']);
    expect(await names('w2')).toEqual([]);

    await api.deleteNode('w2');
    expect((await call('GET', '/api/v1/nodes/w2')).code).toBe(404);
    expect((await drainNode(api, 'w2', { force: false, timeoutMs: 100 })).nodeFound).toBe(false);
  }, 60_000);
});
