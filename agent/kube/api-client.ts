import { ConnectionPool } from '../net/https.ts';
import type { KubeconfigAccess } from './kubeconfig.ts';

export interface KubeApiConnection {
  pool: ConnectionPool;
  /** `accept: application/json`, and the bearer token when the kubeconfig gives one. */
  headers: Record<string, string>;
}

/**
 * How to reach a cluster's API as a kubeconfig says: trusting its CA, presenting its client
 * certificate or its bearer token. Each request gives its own timeout.
 */
export function kubeApiConnection(access: KubeconfigAccess, options: { connections?: number } = {}): KubeApiConnection {
  const pool = new ConnectionPool({
    ca: access.caPem,
    cert: access.clientCertPem,
    key: access.clientKeyPem,
    connections: options.connections,
  });
  const headers: Record<string, string> = { accept: 'application/json' };
  if (access.token) headers.authorization = `Bearer ${access.token}`;
  return { pool, headers };
}

/** The `message` of a Kubernetes Status object (how the API server answers errors), or the start of whatever came back. */
export function statusMessage(text: string): string {
  try {
    const status = JSON.parse(text) as { message?: unknown };
    if (typeof status.message === 'string') return status.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 200) || '(empty body)';
}
