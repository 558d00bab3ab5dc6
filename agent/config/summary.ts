import { X509Certificate, createHash } from 'node:crypto';
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
    controllerUrl: config.controller.url,
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
export function describeToken(token: string, now = Date.now()): string {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string; exp?: number };
    const parts = ['set'];
    if (payload.sub) parts.push(`for ${payload.sub}`);
    if (typeof payload.exp === 'number') {
      const expires = new Date(payload.exp * 1000).toISOString();
      parts.push(payload.exp * 1000 < now ? `EXPIRED at ${expires}` : `expires ${expires}`);
    }
    return parts.join(', ');
  } catch {
    return 'set (claims unreadable)';
  }
}

/** SHA-256 of the certificate's DER bytes, as `openssl x509 -fingerprint -sha256` shows it (without colons). */
function certificateFingerprint(pem: string): string {
  try {
    return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
  } catch {
    return 'unreadable certificate';
  }
}
