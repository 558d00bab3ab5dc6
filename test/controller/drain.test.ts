import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCa } from '../../agent/controller/clusters/pki.ts';
import { httpsClusterApi, parseAdminKubeconfig, type ClusterApi } from '../../agent/controller/kubernetes/cluster-api.ts';
import { DrainError, drainNode, type DrainEvent } from '../../agent/controller/kubernetes/drain.ts';
import { kubeApiConnection } from '../../agent/kube/api-client.ts';
import { request } from '../../agent/net/https.ts';
import { scratchDir } from '../helpers/cli.ts';
import { type ApiServerStandin, startLoopbackApiServerStandin } from '../standins/apiserver-standin.ts';

/**
 * Draining a node through the cluster's API, against the API server stand-in (its pods, budgets
 * and evictions act out the real Eviction API's; test/e2e/day-two-real.test.ts drains through the
 * real one). The test plays the kubelet and the ReplicaSet controller where a drain waits on them.
 */

const dir = scratchDir('drain');
let standin: ApiServerStandin;
let kubeconfig: string;
let api: ClusterApi;
/** Raw requests as the admin, to set the scene and look at it. */
let call: (method: 'GET' | 'POST', pathname: string, body?: unknown) => Promise<{ statusCode: number; json: Record<string, unknown> }>;
const nodesDir = path.join(dir.dir, 'cluster', 'nodes');

beforeAll(async () => {
  const ca = await createCa('kubernetes');
  ({ standin, kubeconfig } = await startLoopbackApiServerStandin(ca, dir.dir, 'v1.37.2'));
  const connection = kubeApiConnection(parseAdminKubeconfig(kubeconfig));
  call = async (method, pathname, body) => {
    const answer = await request(`${standin.url}${pathname}`, {
      pool: connection.pool,
      method,
      headers: { ...connection.headers, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: 5000,
    });
    return { statusCode: answer.statusCode, json: JSON.parse(answer.text) as Record<string, unknown> };
  };
});

afterAll(async () => {
  await standin?.close();
  dir.remove();
});

beforeEach(() => {
  api = httpsClusterApi(parseAdminKubeconfig(kubeconfig));
  mkdirSync(nodesDir, { recursive: true });
  for (const node of ['w1', 'w2'])
    writeFileSync(path.join(nodesDir, `${node}.json`), JSON.stringify({ registeredAt: '2026-12-06T10:00:00Z' }));
});
afterEach(async () => {
  await api.close();
  // Each test starts from an empty cluster: no pods, no budgets.
  writeFileSync(path.join(dir.dir, 'cluster', 'workloads', 'workloads.json'), JSON.stringify({ pods: [], budgets: [] }));
});

type Owner = { kind: string; name: string } | undefined;
async function createPod(name: string, node: string, options: { owner?: Owner; labels?: Record<string, string>; mirror?: boolean } = {}) {
  const owner = 'owner' in options ? options.owner : { kind: 'ReplicaSet', name: 'web-5d8f' };
  const answer = await call('POST', '/api/v1/namespaces/shop/pods', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      labels: options.labels ?? { app: 'web' },
      annotations: options.mirror ? { 'kubernetes.io/config.mirror': 'abc' } : undefined,
      ownerReferences: owner ? [{ apiVersion: 'apps/v1', ...owner, uid: 'u', controller: true }] : undefined,
    },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'pause' }] },
  });
  expect(answer.statusCode).toBe(201);
}

async function createBudget(minAvailable: number) {
  const answer = await call('POST', '/apis/policy/v1/namespaces/shop/poddisruptionbudgets', {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'web' },
    spec: { minAvailable, selector: { matchLabels: { app: 'web' } } },
  });
  expect(answer.statusCode).toBe(201);
}

async function podsOn(node: string): Promise<string[]> {
  const pods = (await api.listNodePods(node)).map((pod) => pod.name);
  return pods.sort();
}

describe('drainNode', () => {
  it('cordons, leaves DaemonSet and mirror pods, and waits for a budget to allow each eviction', async () => {
    await createBudget(1);
    await createPod('web-a', 'w1');
    await createPod('web-b', 'w1');
    await createPod('logs-x', 'w1', { owner: { kind: 'DaemonSet', name: 'logs' }, labels: { app: 'logs' } });
    await createPod('kube-proxy-w1', 'w1', { owner: { kind: 'Node', name: 'w1' }, labels: {}, mirror: true });
    const events: DrainEvent[] = [];
    let replaced = false;
    const result = await drainNode(api, 'w1', {
      force: false,
      timeoutMs: 10_000,
      retryMs: 50,
      pollMs: 20,
      onEvent: (event) => {
        events.push(event);
        // The ReplicaSet controller's part: a replacement runs on w2 after the first eviction, which frees the budget.
        if (event.event === 'blocked' && !replaced) {
          replaced = true;
          void createPod('web-c', 'w2');
        }
      },
    });
    expect(result.nodeFound).toBe(true);
    expect(result.evicted.sort()).toEqual(['shop/web-a', 'shop/web-b']);
    expect(result.deleted).toEqual([]);
    expect(result.skipped.sort()).toEqual(['shop/kube-proxy-w1', 'shop/logs-x']);
    expect(await podsOn('w1')).toEqual(['kube-proxy-w1', 'logs-x']);
    expect(await podsOn('w2')).toEqual(['web-c']);
    const blocked = events.find((event) => event.event === 'blocked');
    expect(blocked).toMatchObject({ message: "Cannot evict pod as it would violate the pod's disruption budget." });
    expect(events[0]).toEqual({ event: 'cordoned', node: 'w1' });
    const node = await call('GET', '/api/v1/nodes/w1');
    expect(node.json.spec).toEqual({ unschedulable: true });
  });

  it('fails at the timeout naming the pod a budget still protects, and leaves it; --force deletes it', async () => {
    await createBudget(2);
    await createPod('web-a', 'w1');
    await createPod('web-b', 'w2');
    const started = Date.now();
    const failure = await drainNode(api, 'w1', { force: false, timeoutMs: 300, retryMs: 50, pollMs: 20 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DrainError);
    expect((failure as DrainError).message).toMatch(
      /^draining node w1 timed out after 300 ms: evictions still refused for shop\/web-a \(Cannot evict pod .*\); --force deletes them$/,
    );
    expect((failure as DrainError).blocked).toEqual(['shop/web-a']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(await podsOn('w1')).toEqual(['web-a']);

    const forced = await drainNode(api, 'w1', { force: true, timeoutMs: 200, retryMs: 50, pollMs: 20 });
    expect(forced).toMatchObject({ evicted: [], deleted: ['shop/web-a'] });
    expect(await podsOn('w1')).toEqual([]);
    expect(await podsOn('w2')).toEqual(['web-b']);
  });

  it('refuses pods with no controller before evicting anything, unless forced', async () => {
    await createPod('web-a', 'w1');
    await createPod('debug', 'w1', { owner: undefined, labels: { app: 'debug' } });
    const failure = await drainNode(api, 'w1', { force: false, timeoutMs: 1000 }).catch((error: unknown) => error);
    expect((failure as DrainError).message).toBe(
      'cannot drain node w1: pods with no controller would not come back (shop/debug); --force evicts them',
    );
    expect(await podsOn('w1')).toEqual(['debug', 'web-a']);
    const forced = await drainNode(api, 'w1', { force: true, timeoutMs: 1000, pollMs: 20 });
    expect(forced.evicted.sort()).toEqual(['shop/debug', 'shop/web-a']);
    expect(await podsOn('w1')).toEqual([]);
  });

  it('is a no-op for a Node that is gone, so a rerun after deleteNode finishes', async () => {
    await api.deleteNode('w1');
    await api.deleteNode('w1');
    expect((await call('GET', '/api/v1/nodes/w1')).statusCode).toBe(404);
    expect(await drainNode(api, 'w1', { force: false, timeoutMs: 100 })).toEqual({
      nodeFound: false,
      evicted: [],
      deleted: [],
      skipped: [],
    });
  });
});
