import { decodeJwt, type JWTPayload } from 'jose';
import { PkeError, errorMessage } from '../core/errors.ts';
import type { AgentConfig } from './schema.ts';

/** The node token's claims, read (not verified: only the controller can do that). Undefined when it is not a JWT. */
export function tokenClaims(token: string): JWTPayload | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

/**
 * The node's Kubernetes and controller name: the config's `nodeName`, else the name the node
 * token was issued for (its `sub`). The controller accepts a node's calls only under that name.
 */
export function nodeName(config: AgentConfig): string {
  if (config.nodeName) return config.nodeName;
  let sub: unknown;
  try {
    sub = decodeJwt(config.controller.token).sub;
  } catch (error) {
    throw new PkeError(`the controller token in the config is not a JWT: ${errorMessage(error)}`);
  }
  if (typeof sub !== 'string' || sub === '') throw new PkeError('the controller token in the config names no node (no sub claim); set nodeName');
  return sub;
}
