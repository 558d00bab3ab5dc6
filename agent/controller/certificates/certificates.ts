import { CERT_WARNING_DAYS, type CertificatesReport } from '../../protocol/api.ts';
import { badRequest, conflict } from '../http/problem.ts';
import type { ClusterState, NodeState } from '../store/state.ts';

/**
 * The expiry of each control-plane node's leaf certificates, as the node reports it after a check
 * or a renewal (`pke-agent certs check|renew`), and the warnings `status` shows from it.
 */

const DAY_MS = 86_400_000;
/** kubeadm's leaf certificates last a year; a CA ten. Nothing a node reports lies further out than this. */
const LATEST_PLAUSIBLE_MS = 11 * 365 * DAY_MS;
/** Clock skew allowed on `checkedAt`. */
const SKEW_MS = 5 * 60_000;

/**
 * Takes a report from `node` only if the controller knows it as a control-plane member of the
 * cluster (it reported joined), and only with times that can be true; refuses it otherwise.
 */
export function acceptCertificates(cluster: ClusterState, node: NodeState | undefined, report: CertificatesReport, now: number) {
  if (node?.role !== 'master' || node.joinedAt === undefined) {
    throw conflict(
      `node ${node?.name ?? '?'} reports certificates, but the controller knows it as no joined control-plane node of ${cluster.name}`,
    );
  }
  const time = (field: string, value: string) => {
    const at = Date.parse(value);
    if (Number.isNaN(at) || at < node.joinedAt! - 366 * DAY_MS || at > now + LATEST_PLAUSIBLE_MS) {
      throw badRequest(`${field}: ${value} is not a time this node's certificates can have`, field);
    }
    return at;
  };
  const checkedAt = time('checkedAt', report.checkedAt);
  if (checkedAt > now + SKEW_MS) throw badRequest(`checkedAt: ${report.checkedAt} is in the future`, 'checkedAt');
  const renewedAt = report.renewedAt === undefined ? undefined : time('renewedAt', report.renewedAt);
  const items = report.certificates.map((c, i) => ({ name: c.name, notAfter: time(`certificates.${i}.notAfter`, c.notAfter) }));
  return { checkedAt, renewedAt, items };
}

/** The earliest expiry a node reported. */
export function earliestExpiry(node: NodeState): { name: string; notAfter: number } | undefined {
  return node.certificates?.items.reduce<{ name: string; notAfter: number } | undefined>(
    (soonest, item) => (soonest === undefined || item.notAfter < soonest.notAfter ? item : soonest),
    undefined,
  );
}

/** One warning per node whose soonest certificate expires within CERT_WARNING_DAYS (or has expired). */
export function certificateWarnings(cluster: ClusterState, now: number): string[] {
  const warnings: string[] = [];
  for (const node of Object.values(cluster.nodes)) {
    if (node.revokedAt !== undefined) continue;
    const soonest = earliestExpiry(node);
    if (soonest === undefined || soonest.notAfter - now > CERT_WARNING_DAYS * DAY_MS) continue;
    const at = new Date(soonest.notAfter).toISOString();
    const expiring = node.certificates!.items.filter((item) => item.notAfter - now <= CERT_WARNING_DAYS * DAY_MS).length;
    warnings.push(
      soonest.notAfter <= now
        ? `node ${node.name}: certificate ${soonest.name} expired at ${at}; run \`pke-agent certs renew\` there`
        : `node ${node.name}: ${expiring} certificate(s) expire within ${CERT_WARNING_DAYS} days, first ${soonest.name} at ${at} (in ${Math.floor((soonest.notAfter - now) / DAY_MS)} days); run \`pke-agent certs renew\` there`,
    );
  }
  return warnings;
}
