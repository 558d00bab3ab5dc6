import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { httpsClusterApi, parseAdminKubeconfig, type ClusterApi } from '../../agent/controller/kubernetes/cluster-api.ts';
import { DrainError, drainNode, type DrainEvent } from '../../agent/controller/kubernetes/drain.ts';
import { scratchDir } from '../helpers/cli.ts';
import {
  budgetAllows,
  controlPlaneBinaries,
  nodesAndNamespace,
  type RealApiServer,
  type RealEtcd,
  runningPod,
  standinKubelets,
  startApiServer,
  startEtcd,
} from '../helpers/real-control-plane.ts';

/**
 * The drain against the real kube-apiserver and the real disruption controller (which keeps each
 * PodDisruptionBudget's `disruptionsAllowed`, what the Eviction API decides on). No kubelet runs:
 * the test plays it (a pod runs and is Ready when the test says so; a pod whose deletion began is
 * confirmed gone), and plays the ReplicaSet controller where a replacement is needed.
 */
const skip = controlPlaneBinaries.available ? undefined : controlPlaneBinaries.reason;
if (skip) console.warn(`real-API drain tests skipped: ${skip}`);

describe.skipIf(skip)('drainNode against the real kube-apiserver', () => {
  const dir = scratchDir('drain-real');
  let etcd: RealEtcd | undefined;
  let server: RealApiServer;
  let api: ClusterApi;
  let kubelets: { stop(): Promise<void> } | undefined;
  const call: RealApiServer['call'] = (...args) => server.call(...args);
  const pod = (name: string, node: string, owner?: { kind: string; name: string }) => runningPod(server, 'shop', name, node, owner);
  const allows = (name: string, disruptions: number) => budgetAllows(server, 'shop', name, disruptions);

  beforeAll(async () => {
    const pki = await createClusterPki();
    etcd = await startEtcd(dir.dir, pki, ['e1']);
    server = await startApiServer(dir.dir, pki, etcd, ['disruption']);
    api = httpsClusterApi(parseAdminKubeconfig(server.kubeconfig));
    await nodesAndNamespace(server, ['w1', 'w2'], 'shop');
    kubelets = standinKubelets(server, 'shop');
  }, 120_000);

  afterAll(async () => {
    await kubelets?.stop();
    await api?.close();
    await server?.close();
    await etcd?.close();
    dir.remove();
  });

  const names = async (node: string) => (await api.listNodePods(node)).map((pod) => pod.name).sort();

  it('evicts within the budget, waits for it, leaves DaemonSet pods, and cordons', async () => {
    const budget = { metadata: { name: 'web' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } };
    expect((await call('POST', '/apis/policy/v1/namespaces/shop/poddisruptionbudgets', budget)).code).toBe(201);
    await pod('web-a', 'w1');
    await pod('web-b', 'w1');
    await pod('logs-w1', 'w1', { kind: 'DaemonSet', name: 'logs' });
    await allows('web', 1);

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
        if (event.event === 'blocked') replaced ??= pod('web-c', 'w2');
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
    await allows('web', 0);
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
