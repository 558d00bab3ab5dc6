import { Agent, request } from '../net/undici.ts';
import YAML from 'yaml';
import { z } from 'zod';
import { errorMessage } from '../core/errors.ts';
import type { BootstrapTokenSecret } from './bootstrap-tokens.ts';

/**
 * What the controller asks of a running cluster's API: only to create bootstrap-token
 * Secrets. One interface, one HTTPS implementation driven by the leader's admin.conf, so the
 * lab and the tests point it at the API server stand-in simply through the kubeconfig.
 */
export interface ClusterApi {
  /** The API server URL, for messages. */
  readonly server: string;
  createBootstrapTokenSecret(secret: BootstrapTokenSecret): Promise<void>;
  close(): Promise<void>;
}

export class ClusterApiError extends Error {}

export interface AdminKubeconfig {
  server: string;
  caPem: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  token?: string;
}

const kubeconfigSchema = z.object({
  'current-context': z.string(),
  contexts: z.array(z.object({ name: z.string(), context: z.object({ cluster: z.string(), user: z.string() }) })),
  clusters: z.array(z.object({ name: z.string(), cluster: z.object({ server: z.url(), 'certificate-authority-data': z.string() }) })),
  users: z.array(
    z.object({
      name: z.string(),
      user: z.object({
        'client-certificate-data': z.string().optional(),
        'client-key-data': z.string().optional(),
        token: z.string().optional(),
      }),
    }),
  ),
});

/** Reads a kubeconfig with inline data (as kubeadm writes admin.conf); the message says what is missing. */
export function parseAdminKubeconfig(text: string): AdminKubeconfig {
  let document: unknown;
  try {
    document = YAML.parse(text);
  } catch (error) {
    throw new ClusterApiError(`the kubeconfig is not YAML: ${errorMessage(error)}`);
  }
  const parsed = kubeconfigSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ClusterApiError(`the kubeconfig lacks ${issue ? issue.path.join('.') : 'required fields'}${issue ? `: ${issue.message}` : ''}`);
  }
  const config = parsed.data;
  const context = config.contexts.find((c) => c.name === config['current-context'])?.context;
  if (!context) throw new ClusterApiError(`the kubeconfig's current-context "${config['current-context']}" is not among its contexts`);
  const cluster = config.clusters.find((c) => c.name === context.cluster)?.cluster;
  const user = config.users.find((u) => u.name === context.user)?.user;
  if (!cluster) throw new ClusterApiError(`the kubeconfig has no cluster "${context.cluster}"`);
  if (!user) throw new ClusterApiError(`the kubeconfig has no user "${context.user}"`);
  const hasCert = user['client-certificate-data'] !== undefined && user['client-key-data'] !== undefined;
  if (!hasCert && user.token === undefined) throw new ClusterApiError(`the kubeconfig user "${context.user}" has neither a client certificate and key nor a token`);
  const decode = (value: string | undefined) => (value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8'));
  return {
    server: cluster.server.replace(/\/$/, ''),
    caPem: decode(cluster['certificate-authority-data']) ?? '',
    clientCertPem: decode(user['client-certificate-data']),
    clientKeyPem: decode(user['client-key-data']),
    token: user.token,
  };
}

const REQUEST_TIMEOUT_MS = 10_000;

/** The ClusterApi over HTTPS with undici, trusting only the kubeconfig's CA. */
export function httpsClusterApi(kubeconfig: AdminKubeconfig): ClusterApi {
  const dispatcher = new Agent({
    connect: { ca: kubeconfig.caPem, cert: kubeconfig.clientCertPem, key: kubeconfig.clientKeyPem },
    connections: 16,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  });
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (kubeconfig.token) headers.authorization = `Bearer ${kubeconfig.token}`;

  return {
    server: kubeconfig.server,
    async createBootstrapTokenSecret(secret) {
      const url = `${kubeconfig.server}/api/v1/namespaces/kube-system/secrets`;
      let answer;
      try {
        answer = await request(url, { method: 'POST', headers, body: JSON.stringify(secret), dispatcher });
      } catch (error) {
        throw new ClusterApiError(`POST ${url} failed: ${errorMessage(error)}`);
      }
      const text = await answer.body.text();
      if (answer.statusCode !== 201) {
        throw new ClusterApiError(`POST ${url} answered ${answer.statusCode}: ${statusMessage(text)}`);
      }
    },
    close: () => dispatcher.close(),
  };
}

/** The `message` of a Kubernetes Status object, or the start of whatever came back. */
function statusMessage(text: string): string {
  try {
    const status = JSON.parse(text) as { message?: unknown };
    if (typeof status.message === 'string') return status.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 200) || '(empty body)';
}
