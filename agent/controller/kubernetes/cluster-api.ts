import { X509Certificate } from 'node:crypto';
import { request } from '../../net/https.ts';
import { errorMessage } from '../../core/errors.ts';
import { kubeApiConnection, statusMessage } from '../../kube/api-client.ts';
import { parseKubeconfig, type KubeconfigAccess, type KubeconfigMaterial } from '../../kube/kubeconfig.ts';
import type { BootstrapTokenSecret } from './bootstrap-tokens.ts';

/**
 * What the controller asks of a running cluster's API: only to create and delete
 * bootstrap-token Secrets. One interface, one HTTPS implementation driven by the leader's admin.conf, so the
 * lab and the tests point it at the API server stand-in simply through the kubeconfig.
 */
export interface ClusterApi {
  /** The API server URL, for messages. */
  readonly server: string;
  createBootstrapTokenSecret(secret: BootstrapTokenSecret): Promise<void>;
  /** Removes the Secret of bootstrap token `id` (kubeadm's `bootstrap-token-<id>`); one that is gone already is fine. */
  deleteBootstrapTokenSecret(id: string): Promise<void>;
  close(): Promise<void>;
}

export class ClusterApiError extends Error {
  /** What the cluster's API answered, bounded: for the operator's log, never for a node. */
  readonly detail: string | undefined;

  constructor(message: string, detail?: string) {
    super(message);
    this.detail = detail;
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
/** How much of a cluster API's refusal the controller logs; none of it goes to nodes. */
const DETAIL_CHARS = 200;

/** The ClusterApi over HTTPS, trusting only the kubeconfig's CA. */
export function httpsClusterApi(kubeconfig: AdminKubeconfig): ClusterApi {
  const { pool, headers: auth } = kubeApiConnection(kubeconfig, { connections: 16 });
  const headers = { ...auth, 'content-type': 'application/json' };

  const secrets = `${kubeconfig.server}/api/v1/namespaces/kube-system/secrets`;
  const send = async (method: 'POST' | 'DELETE', url: string, accepted: number[], body?: unknown): Promise<void> => {
    let answer;
    try {
      answer = await request(url, {
        pool,
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: REQUEST_TIMEOUT_MS,
      });
    } catch (error) {
      throw new ClusterApiError(`${method} ${url} failed: ${errorMessage(error)}`);
    }
    if (!accepted.includes(answer.statusCode)) {
      throw new ClusterApiError(`${method} ${url} answered ${answer.statusCode}`, statusMessage(answer.text).slice(0, DETAIL_CHARS));
    }
  };

  return {
    server: kubeconfig.server,
    createBootstrapTokenSecret: (secret) => send('POST', secrets, [201], secret),
    deleteBootstrapTokenSecret: (id) => send('DELETE', `${secrets}/bootstrap-token-${encodeURIComponent(id)}`, [200, 202, 404]),
    close: () => pool.close(),
  };
}
