import { X509Certificate, createHash } from 'node:crypto';
import { tokenClaims } from './node-name.ts';
import type { AgentConfig } from './schema.ts';

/** The config as safe to show: no token, no keys; the token's claims say whom it is for and until when. */
export interface ConfigSummary {
  cluster: string;
  role: string;
  pool: string;
  nodeName?: string;
  controllerUrl: string;
  controllerCaSha256: string;
  token: string;
  kubernetesVersion: string;
  endpoint: string;
  vipInterface?: string;
  podCidr: string;
  serviceCidr: string;
  labels: Record<string, string>;
  taints: string[];
}

/** The config without its secrets: what `status` and `config show` print. */
export function summarizeConfig(config: AgentConfig): ConfigSummary {
  return {
    cluster: `${config.cluster.name} (${config.cluster.id})`,
    role: config.role,
    pool: config.pool,
    nodeName: config.nodeName,
    controllerUrl: [config.controller.url, ...(config.controller.otherUrls ?? [])].map(maskCredentials).join(', '),
    controllerCaSha256: certificateFingerprint(config.controller.caCert),
    token: describeToken(config.controller.token),
    kubernetesVersion: config.kubernetes.version,
    endpoint: `${config.controlPlaneEndpoint.vip}:${config.controlPlaneEndpoint.port}`,
    vipInterface: config.controlPlaneEndpoint.interface,
    podCidr: config.kubernetes.podCidr,
    serviceCidr: config.kubernetes.serviceCidr,
    labels: config.labels,
    taints: config.taints.map((t) => `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`),
  };
}

/** Says whom the token is for and until when, from its claims; never the token itself. */
function describeToken(token: string, now = Date.now()): string {
  const claims = tokenClaims(token);
  if (!claims) return 'set (claims unreadable)';
  const parts = ['set'];
  if (claims.sub) parts.push(`for ${claims.sub}`);
  if (typeof claims.exp === 'number') {
    const expires = new Date(claims.exp * 1000).toISOString();
    parts.push(claims.exp * 1000 < now ? `EXPIRED at ${expires}` : `expires ${expires}`);
  }
  return parts.join(', ');
}

/** The URL with its user and password, if it has them, shown as `***`. */
function maskCredentials(url: string): string {
  const parsed = new URL(url);
  if (parsed.username === '' && parsed.password === '') return url;
  parsed.username = parsed.username && '***';
  parsed.password = parsed.password && '***';
  return parsed.toString();
}

/** SHA-256 of the certificate's DER bytes, as `openssl x509 -fingerprint -sha256` shows it (without colons). */
function certificateFingerprint(pem: string): string {
  try {
    return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
  } catch {
    return 'unreadable certificate';
  }
}
