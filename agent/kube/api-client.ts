import { Agent } from '../net/undici.ts';
import type { KubeconfigAccess } from './kubeconfig.ts';

export interface KubeApiConnection {
  dispatcher: Agent;
  /** `accept: application/json`, and the bearer token when the kubeconfig gives one. */
  headers: Record<string, string>;
}

/**
 * How to reach a cluster's API as a kubeconfig says: trusting its CA, presenting its client
 * certificate or its bearer token. `timeoutMs` bounds the connect, the headers and the body.
 */
export function kubeApiConnection(access: KubeconfigAccess, options: { timeoutMs: number; connections?: number }): KubeApiConnection {
  const dispatcher = new Agent({
    connect: { ca: access.caPem, cert: access.clientCertPem, key: access.clientKeyPem, timeout: options.timeoutMs },
    connections: options.connections,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  const headers: Record<string, string> = { accept: 'application/json' };
  if (access.token) headers.authorization = `Bearer ${access.token}`;
  return { dispatcher, headers };
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
