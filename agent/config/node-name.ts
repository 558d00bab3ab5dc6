import { decodeJwt, type JWTPayload } from 'jose';
import { PkeError } from '../core/errors.ts';
import type { AgentConfig } from './schema.ts';

/** The node token's claims, read (not verified: only the controller can do that). Undefined when it is not a JWT. */
export function tokenClaims(token: string): JWTPayload | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

/** The node the token was issued for (its `sub`), when it names one. */
export function tokenNodeName(token: string): string | undefined {
  const sub = tokenClaims(token)?.sub;
  return typeof sub === 'string' && sub !== '' ? sub : undefined;
}

/**
 * The node's Kubernetes and controller name: the config's `nodeName`, else the name the node
 * token was issued for (its `sub`). The controller accepts a node's calls only under that name.
 * The schema refuses a config with neither.
 */
export function nodeName(config: AgentConfig): string {
  const name = config.nodeName ?? tokenNodeName(config.controller.token);
  if (name === undefined) throw new PkeError('the config names no node: no nodeName, and the controller token has no sub claim');
  return name;
}
