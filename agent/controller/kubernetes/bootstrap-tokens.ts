import { randomInt } from 'node:crypto';

/** kubeadm bootstrap tokens (`[a-z0-9]{6}.[a-z0-9]{16}`) and the Secret that makes one valid in a cluster. */

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** The group kubeadm's default node token authenticates as (`kubeadm token create` uses it too). */
const DEFAULT_NODE_TOKEN_GROUP = 'system:bootstrappers:kubeadm:default-node-token';

export interface BootstrapToken {
  id: string;
  secret: string;
  /** `id.secret`, what kubeadm takes. */
  token: string;
  expiresAt: number;
}

export function generateBootstrapToken(ttlSeconds: number, now = Date.now()): BootstrapToken {
  const id = randomString(6);
  const secret = randomString(16);
  return { id, secret, token: `${id}.${secret}`, expiresAt: now + ttlSeconds * 1000 };
}

export interface BootstrapTokenSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: 'kube-system' };
  type: 'bootstrap.kubernetes.io/token';
  /** Base64 values, as the API stores them. */
  data: Record<string, string>;
}

/** The Secret exactly as kubeadm writes it for a bootstrap token. */
export function bootstrapTokenSecret(token: BootstrapToken, description: string): BootstrapTokenSecret {
  const fields: Record<string, string> = {
    'token-id': token.id,
    'token-secret': token.secret,
    expiration: rfc3339(token.expiresAt),
    'usage-bootstrap-authentication': 'true',
    'usage-bootstrap-signing': 'true',
    'auth-extra-groups': DEFAULT_NODE_TOKEN_GROUP,
    description,
  };
  const data = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${token.id}`, namespace: 'kube-system' },
    type: 'bootstrap.kubernetes.io/token',
    data,
  };
}

/** RFC 3339 in UTC without fractions, as Go's time.RFC3339 formats it. */
function rfc3339(epochMs: number): string {
  return new Date(Math.floor(epochMs / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function randomString(length: number): string {
  let out = '';
  for (let i = 0; i < length; i += 1) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}
