import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../../core/errors.ts';
import { kubeApiConnection, statusMessage } from '../../kube/api-client.ts';
import { request } from '../../net/https.ts';
import type { AdminKubeconfig } from '../kubernetes/cluster-api.ts';

/**
 * What an upgrade asks of the cluster's API about one Node, with the admin.conf the leader
 * uploaded: cordon, evict its pods (the Eviction API, so PodDisruptionBudgets hold; mirror and
 * DaemonSet pods stay, as `kubectl drain --ignore-daemonsets` leaves them), uncordon, and read
 * its Ready condition and kubelet version. The controller does it, not the node: a worker has
 * only its kubelet's credentials, which cannot read the DaemonSets `kubectl drain` checks, and
 * admin.conf stays with the controller. A seam for the node-removal drain of issue 16a.
 */
export interface NodeMaintenance {
  cordon(node: string, unschedulable: boolean): Promise<void>;
  /** Evicts every pod of the node but mirror and DaemonSet pods; waits until they are gone. Returns their names. */
  drain(node: string, timeoutMs: number, signal?: AbortSignal): Promise<string[]>;
  nodeInfo(node: string): Promise<{ ready: boolean; kubeletVersion?: string }>;
  close(): Promise<void>;
}

export class NodeMaintenanceError extends Error {
  /** No answer, or a 5xx: the API may answer a moment later (an API server restarting under an upgrade). */
  readonly transient: boolean;

  constructor(message: string, transient: boolean) {
    super(message);
    this.transient = transient;
  }
}

const REQUEST_TIMEOUT_MS = 10_000;

interface PodItem {
  metadata: { name: string; namespace: string; annotations?: Record<string, string>; ownerReferences?: { kind: string }[] };
  status?: { phase?: string };
}

export function nodeMaintenance(kubeconfig: AdminKubeconfig): NodeMaintenance {
  const { pool, headers: auth } = kubeApiConnection(kubeconfig, { connections: 4 });
  const call = async (method: 'GET' | 'POST' | 'PATCH', path: string, accepted: number[], body?: unknown, contentType?: string) => {
    const url = `${kubeconfig.server}${path}`;
    let answer;
    try {
      answer = await request(url, {
        pool,
        method,
        headers: { ...auth, ...(body === undefined ? {} : { 'content-type': contentType ?? 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: REQUEST_TIMEOUT_MS,
      });
    } catch (error) {
      throw new NodeMaintenanceError(`${method} ${url} failed: ${errorMessage(error)}`, true);
    }
    if (!accepted.includes(answer.statusCode))
      throw new NodeMaintenanceError(
        `${method} ${url} answered ${answer.statusCode}: ${statusMessage(answer.text).slice(0, 200)}`,
        answer.statusCode >= 500,
      );
    return { status: answer.statusCode, json: answer.text ? (JSON.parse(answer.text) as unknown) : undefined };
  };
  const nodePath = (node: string) => `/api/v1/nodes/${encodeURIComponent(node)}`;

  const podsToEvict = async (node: string): Promise<PodItem[]> => {
    const selector = encodeURIComponent(`spec.nodeName=${node}`);
    const { json } = await call('GET', `/api/v1/pods?fieldSelector=${selector}`, [200]);
    return ((json as { items: PodItem[] }).items ?? []).filter(
      (pod) =>
        pod.metadata.annotations?.['kubernetes.io/config.mirror'] === undefined &&
        !(pod.metadata.ownerReferences ?? []).some((owner) => owner.kind === 'DaemonSet') &&
        pod.status?.phase !== 'Succeeded' &&
        pod.status?.phase !== 'Failed',
    );
  };

  return {
    async cordon(node, unschedulable) {
      await call('PATCH', nodePath(node), [200], { spec: { unschedulable } }, 'application/strategic-merge-patch+json');
    },
    async drain(node, timeoutMs, signal) {
      const deadline = Date.now() + timeoutMs;
      const evicted = new Set<string>();
      for (;;) {
        const pods = await podsToEvict(node);
        if (pods.length === 0) return [...evicted].sort();
        for (const pod of pods) {
          const { namespace, name } = pod.metadata;
          const eviction = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } };
          // 429: a PodDisruptionBudget does not allow it yet; 404: gone already.
          const { status } = await call(
            'POST',
            `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}/eviction`,
            [200, 201, 404, 429],
            eviction,
          );
          if (status !== 429) evicted.add(`${namespace}/${name}`);
        }
        if (Date.now() > deadline) {
          throw new NodeMaintenanceError(
            `drain of ${node} timed out after ${Math.round(timeoutMs / 1000)} s; pods left: ${pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).join(', ')}`,
            false,
          );
        }
        await sleep(1000, undefined, { signal });
      }
    },
    async nodeInfo(node) {
      const { json } = await call('GET', nodePath(node), [200]);
      const status = (json as { status?: { conditions?: { type: string; status: string }[]; nodeInfo?: { kubeletVersion?: string } } })
        .status;
      return {
        ready: status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True',
        kubeletVersion: status?.nodeInfo?.kubeletVersion,
      };
    },
    close: () => pool.close(),
  };
}
