import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { request } from '../../net/https.ts';
import { errorMessage } from '../../core/errors.ts';
import { kubeApiConnection, statusMessage } from '../../kube/api-client.ts';
import { parseKubeconfig, type KubeconfigAccess, type KubeconfigMaterial } from '../../kube/kubeconfig.ts';
import type { BootstrapTokenSecret } from './bootstrap-tokens.ts';

/**
 * What the controller asks of a running cluster's API: bootstrap-token Secrets for joins, and
 * what draining and removing a node takes (cordon, the node's pods, evictions, deletions). One
 * interface, one HTTPS implementation driven by the leader's admin.conf, so the lab and the
 * tests point it at the API server stand-in simply through the kubeconfig.
 */
export interface ClusterApi {
  /** The API server URL, for messages. */
  readonly server: string;
  createBootstrapTokenSecret(secret: BootstrapTokenSecret): Promise<void>;
  /** Removes the Secret of bootstrap token `id` (kubeadm's `bootstrap-token-<id>`); one that is gone already is fine. */
  deleteBootstrapTokenSecret(id: string): Promise<void>;
  /** Sets the Node's `spec.unschedulable` (cordon, uncordon); `gone` when there is no such Node. */
  setNodeUnschedulable(node: string, unschedulable: boolean): Promise<'done' | 'gone'>;
  /** Every pod bound to the Node (`spec.nodeName`), in every namespace. */
  listNodePods(node: string): Promise<NodePod[]>;
  /**
   * Asks the Eviction API to evict the pod, which honours its PodDisruptionBudgets: `evicted`
   * (its deletion began), `blocked` (429: a budget or the API refuses it for now, `message`
   * says why), `gone` (no such pod).
   */
  evictPod(pod: PodRef): Promise<EvictionOutcome>;
  /** Deletes the pod at once (grace period 0), past any budget; one that is gone already is fine. */
  deletePod(pod: PodRef): Promise<void>;
  /** Whether this very pod (same uid) still exists; a pod of the same name made anew is another pod. */
  podExists(pod: PodRef & { uid: string }): Promise<boolean>;
  /** Deletes the Node object; one that is gone already is fine. */
  deleteNode(node: string): Promise<void>;
  /** The Node's Ready condition and kubelet version; `found: false` when there is no such Node. */
  nodeInfo(node: string): Promise<NodeInfo>;
  /** kubeadm's ClusterConfiguration.kubernetesVersion in kube-system/kubeadm-config (what a control-plane join deploys), without the leading v. */
  kubeadmKubernetesVersion(): Promise<string>;
  /** Sets it (read-modify-write on the ConfigMap's resourceVersion, a 409 conflict read again and retried a few times); answers whether it changed. */
  setKubeadmKubernetesVersion(version: string): Promise<boolean>;
  close(): Promise<void>;
}

export interface NodeInfo {
  found: boolean;
  ready: boolean;
  kubeletVersion?: string;
}

export interface PodRef {
  namespace: string;
  name: string;
}

export type EvictionOutcome = { outcome: 'evicted' } | { outcome: 'gone' } | { outcome: 'blocked'; message: string };

/** What draining needs to know of a pod on a node. */
export interface NodePod extends PodRef {
  uid: string;
  /** Pending, Running, Succeeded, Failed or Unknown. */
  phase: string;
  /** The kind and name of its controlling owner (ReplicaSet, DaemonSet, ...), if any. */
  controller?: { kind: string; name: string };
  /** A static pod's mirror in the API (the kubelet owns it; the API cannot evict it). */
  mirror: boolean;
  /** Its deletion has begun. */
  deleting: boolean;
}

/** The mirror-pod annotation the kubelet sets on a static pod's API object. */
const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror';

const podListSchema = z.object({
  items: z.array(
    z.object({
      metadata: z.object({
        name: z.string(),
        namespace: z.string(),
        uid: z.string(),
        annotations: z.record(z.string(), z.string()).optional(),
        ownerReferences: z.array(z.object({ kind: z.string(), name: z.string(), controller: z.boolean().optional() })).optional(),
        deletionTimestamp: z.string().optional(),
      }),
      status: z.object({ phase: z.string().optional() }).optional(),
    }),
  ),
});

const podUidSchema = z.object({ metadata: z.object({ uid: z.string() }) });
const nodeInfoSchema = z.object({
  status: z
    .object({
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
      nodeInfo: z.object({ kubeletVersion: z.string().optional() }).optional(),
    })
    .optional(),
});

/** A ConfigMap as the API answers it: the fields read here, the rest kept for a PUT. */
const configMapSchema = z.looseObject({
  metadata: z.looseObject({ resourceVersion: z.string() }),
  data: z.record(z.string(), z.string()).optional(),
});

/** Where kubeadm keeps the cluster's configuration (its upload-config phase writes it; joins read it). */
const KUBEADM_CONFIG = 'kube-system/kubeadm-config';
const KUBERNETES_VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;
/** How often a write of kubeadm-config that met a newer version of it is read and tried again. */
const CONFLICT_RETRIES = 4;

export class ClusterApiError extends Error {
  /** What the cluster's API answered, bounded: for the operator's log, never for a node. */
  readonly detail: string | undefined;
  /** No answer, or a 5xx: the API may answer a moment later (an API server restarting under an upgrade). */
  readonly transient: boolean;

  constructor(message: string, detail?: string, transient = false) {
    super(message);
    this.detail = detail;
    this.transient = transient;
  }
}

/** admin.conf's server and credentials, its CA always given. */
export type AdminKubeconfig = KubeconfigAccess & { caPem: string };

/** Reads a kubeconfig with inline data (as kubeadm writes admin.conf); the message says what is missing. */
export function parseAdminKubeconfig(text: string): AdminKubeconfig {
  let entry;
  try {
    entry = parseKubeconfig(text);
  } catch (error) {
    throw new ClusterApiError(errorMessage(error));
  }
  // The controller keeps admin.conf alone: it has no files to follow.
  const inline = (what: string, material: KubeconfigMaterial | undefined): string | undefined => {
    if (material !== undefined && 'file' in material)
      throw new ClusterApiError(`the kubeconfig names a file for its ${what} (${material.file}); give it inline (${what}-data)`);
    return material?.pem;
  };
  const caPem = inline('certificate-authority', entry.ca);
  if (caPem === undefined) throw new ClusterApiError("the kubeconfig lacks the cluster's certificate-authority-data");
  return {
    server: entry.server,
    caPem,
    clientCertPem: inline('client-certificate', entry.clientCert),
    clientKeyPem: inline('client-key', entry.clientKey),
    token: entry.token,
  };
}

/**
 * The leader's admin.conf is for this cluster: its CA is the cluster CA the controller made,
 * its server the cluster's endpoint (`https://VIP:port`). The controller sends requests there
 * with every join, so it takes no other server and trusts no other CA.
 */
export function assertClusterKubeconfig(kubeconfig: AdminKubeconfig, cluster: { caCertPem: string; endpoint: string }): void {
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(kubeconfig.caPem);
  } catch {
    throw new ClusterApiError('its certificate-authority-data is not a PEM certificate');
  }
  if (!ca.raw.equals(new X509Certificate(cluster.caCertPem).raw))
    throw new ClusterApiError("its certificate-authority-data is not this cluster's CA");
  const wanted = new URL(`https://${cluster.endpoint}`).origin;
  let server: URL | undefined;
  try {
    server = new URL(kubeconfig.server);
  } catch {
    server = undefined;
  }
  if (server?.origin !== wanted || server.username !== '' || server.password !== '' || server.pathname !== '/' || server.search !== '') {
    throw new ClusterApiError(`its server is not the cluster's endpoint ${wanted}`);
  }
}

const REQUEST_TIMEOUT_MS = 10_000;
const CONNECTION_RETRIES = 3;
const CONNECTION_RETRY_MS = 1_000;
/** How much of a cluster API's refusal the controller logs; none of it goes to nodes. */
const DETAIL_CHARS = 200;

/** The ClusterApi over HTTPS, trusting only the kubeconfig's CA. */
export function httpsClusterApi(kubeconfig: AdminKubeconfig): ClusterApi {
  const { pool, headers } = kubeApiConnection(kubeconfig, { connections: 16 });
  const base = kubeconfig.server;

  type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /**
   * One request; one that got no answer is sent again (up to CONNECTION_RETRIES times, a second
   * apart) when sending it twice does no harm: the API is behind the VIP, and a keep-alive
   * connection to a node that gave the VIP up or left the cluster is reset under it.
   */
  const send = async (method: Method, url: string, body?: unknown, contentType = 'application/json', repeatable = method !== 'POST') => {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await request(url, {
          pool,
          method,
          headers: body === undefined ? headers : { ...headers, 'content-type': contentType },
          body: body === undefined ? undefined : JSON.stringify(body),
          timeoutMs: REQUEST_TIMEOUT_MS,
        });
      } catch (error) {
        if (!repeatable || attempt >= CONNECTION_RETRIES)
          throw new ClusterApiError(`${method} ${url} failed: ${errorMessage(error)}`, undefined, true);
      }
      await sleep(CONNECTION_RETRY_MS);
    }
  };
  const refused = (method: Method, url: string, answer: { statusCode: number; text: string }) =>
    new ClusterApiError(
      `${method} ${url} answered ${answer.statusCode}`,
      statusMessage(answer.text).slice(0, DETAIL_CHARS),
      answer.statusCode >= 500,
    );
  /** Sends, and answers the status when it is one of `accepted`; anything else is an error. */
  const expect = async (method: Method, url: string, accepted: number[], body?: unknown, contentType?: string) => {
    const answer = await send(method, url, body, contentType);
    if (!accepted.includes(answer.statusCode)) throw refused(method, url, answer);
    return answer;
  };
  const parse = <T>(schema: z.ZodType<T>, url: string, text: string): T => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ClusterApiError(`GET ${url} answered something that is not JSON`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new ClusterApiError(`GET ${url} answered an object of an unexpected shape`, parsed.error.message.slice(0, DETAIL_CHARS));
    return parsed.data;
  };

  const secrets = `${base}/api/v1/namespaces/kube-system/secrets`;
  const nodeUrl = (node: string) => `${base}/api/v1/nodes/${encodeURIComponent(node)}`;
  const kubeadmConfigUrl = `${base}/api/v1/namespaces/kube-system/configmaps/kubeadm-config`;
  /** The ConfigMap, its ClusterConfiguration as a YAML document (comments and order kept), and the version it names. */
  const readKubeadmConfig = async () => {
    const url = kubeadmConfigUrl;
    const answer = await expect('GET', url, [200, 404]);
    if (answer.statusCode === 404)
      throw new ClusterApiError(
        `the ConfigMap ${KUBEADM_CONFIG} is missing (GET ${url} answered 404)`,
        statusMessage(answer.text).slice(0, DETAIL_CHARS),
      );
    const configMap = parse(configMapSchema, url, answer.text);
    const text = configMap.data?.ClusterConfiguration;
    if (text === undefined) throw new ClusterApiError(`the ConfigMap ${KUBEADM_CONFIG} has no ClusterConfiguration (GET ${url})`);
    const document = parseDocument(text);
    if (document.errors.length > 0)
      throw new ClusterApiError(
        `the ClusterConfiguration in the ConfigMap ${KUBEADM_CONFIG} is not YAML (GET ${url})`,
        document.errors[0]?.message.slice(0, DETAIL_CHARS),
      );
    const version = document.get('kubernetesVersion');
    if (typeof version !== 'string' || version === '')
      throw new ClusterApiError(`the ClusterConfiguration in the ConfigMap ${KUBEADM_CONFIG} names no kubernetesVersion (GET ${url})`);
    return { configMap, document, version: version.replace(/^v/, '') };
  };
  const podUrl = (pod: PodRef) => `${base}/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}`;

  return {
    server: base,
    createBootstrapTokenSecret: async (secret) => {
      await expect('POST', secrets, [201], secret);
    },
    deleteBootstrapTokenSecret: async (id) => {
      await expect('DELETE', `${secrets}/bootstrap-token-${encodeURIComponent(id)}`, [200, 202, 404]);
    },
    setNodeUnschedulable: async (node, unschedulable) => {
      const answer = await expect('PATCH', nodeUrl(node), [200, 404], { spec: { unschedulable } }, 'application/merge-patch+json');
      return answer.statusCode === 404 ? 'gone' : 'done';
    },
    listNodePods: async (node) => {
      const url = `${base}/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${node}`)}`;
      const list = parse(podListSchema, url, (await expect('GET', url, [200])).text);
      return list.items.map(({ metadata, status }) => {
        const owner = metadata.ownerReferences?.find((reference) => reference.controller === true);
        return {
          namespace: metadata.namespace,
          name: metadata.name,
          uid: metadata.uid,
          phase: status?.phase ?? 'Unknown',
          controller: owner ? { kind: owner.kind, name: owner.name } : undefined,
          mirror: metadata.annotations?.[MIRROR_ANNOTATION] !== undefined,
          deleting: metadata.deletionTimestamp !== undefined,
        };
      });
    },
    evictPod: async (pod) => {
      const url = `${podUrl(pod)}/eviction`;
      const eviction = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.name, namespace: pod.namespace } };
      // Evicting a pod twice is harmless: the second finds it going or gone.
      const answer = await send('POST', url, eviction, 'application/json', true);
      if (answer.statusCode === 200 || answer.statusCode === 201) return { outcome: 'evicted' };
      if (answer.statusCode === 404) return { outcome: 'gone' };
      if (answer.statusCode === 429) return { outcome: 'blocked', message: statusMessage(answer.text).slice(0, DETAIL_CHARS) };
      throw refused('POST', url, answer);
    },
    deletePod: async (pod) => {
      await expect('DELETE', `${podUrl(pod)}?gracePeriodSeconds=0`, [200, 202, 404]);
    },
    podExists: async (pod) => {
      const url = podUrl(pod);
      const answer = await expect('GET', url, [200, 404]);
      return answer.statusCode === 200 && parse(podUidSchema, url, answer.text).metadata.uid === pod.uid;
    },
    deleteNode: async (node) => {
      await expect('DELETE', nodeUrl(node), [200, 202, 404]);
    },
    nodeInfo: async (node) => {
      const url = nodeUrl(node);
      const answer = await expect('GET', url, [200, 404]);
      if (answer.statusCode === 404) return { found: false, ready: false };
      const { status } = parse(nodeInfoSchema, url, answer.text);
      return {
        found: true,
        ready: status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True',
        kubeletVersion: status?.nodeInfo?.kubeletVersion,
      };
    },
    kubeadmKubernetesVersion: async () => (await readKubeadmConfig()).version,
    setKubeadmKubernetesVersion: async (version) => {
      if (!KUBERNETES_VERSION.test(version))
        throw new ClusterApiError(`not a Kubernetes version to set in ${KUBEADM_CONFIG}: ${JSON.stringify(version)} (give it as 1.37.2)`);
      let conflict: { statusCode: number; text: string } | undefined;
      for (let attempt = 0; attempt <= CONFLICT_RETRIES; attempt += 1) {
        const { configMap, document, version: current } = await readKubeadmConfig();
        if (current === version) return false;
        document.set('kubernetesVersion', `v${version}`);
        // The resourceVersion read goes back with it: the API refuses the write (409) if the ConfigMap changed meanwhile.
        const updated = { ...configMap, data: { ...configMap.data, ClusterConfiguration: document.toString() } };
        const answer = await expect('PUT', kubeadmConfigUrl, [200, 409], updated);
        if (answer.statusCode === 200) return true;
        conflict = answer;
      }
      throw new ClusterApiError(
        `PUT ${kubeadmConfigUrl} answered 409 ${CONFLICT_RETRIES + 1} times: ${KUBEADM_CONFIG} kept changing under the write`,
        conflict && statusMessage(conflict.text).slice(0, DETAIL_CHARS),
        true,
      );
    },
    close: () => pool.close(),
  };
}
