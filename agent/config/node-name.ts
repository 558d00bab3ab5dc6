import { hostname } from 'node:os';
import type { AgentConfig } from './schema.ts';

/**
 * The node's Kubernetes and controller name: the config's `nodeName`, else the name the node
 * token was issued for (its `sub`), else the host name.
 */
export function nodeName(config: AgentConfig): string {
  if (config.nodeName) return config.nodeName;
  const sub = tokenSubject(config.controller.token);
  return sub ?? hostname().toLowerCase();
}

function tokenSubject(token: string): string | undefined {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' && claims.sub ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}
