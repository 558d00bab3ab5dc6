import { X509Certificate } from 'node:crypto';
import { clusterEndpoint } from '../clusters/cluster-records.ts';
import { type AdminKubeconfig, ClusterApiError, assertClusterKubeconfig, parseAdminKubeconfig } from '../kubernetes/cluster-api.ts';
import { badRequest } from '../http/problem.ts';
import type { ClusterState } from '../store/state.ts';

/**
 * A renewed admin.conf from a control-plane node, for the controller's own copy (it mints join
 * tokens with it). Taken only if it is the cluster's: its CA the cluster CA and its server the
 * cluster endpoint (as the leader's at init), its client certificate signed by the cluster CA for
 * a cluster-admin group, and lasting longer than the one kept. Answers whether to replace it.
 */

/** kubeadm's admin.conf user: `kubeadm:cluster-admins` from 1.29, `system:masters` before (and super-admin.conf). */
const ADMIN_GROUPS = ['kubeadm:cluster-admins', 'system:masters'];

export function renewedAdminKubeconfig(options: { cluster: ClusterState; caCertPem: string; stored: string; text: string }): boolean {
  const { cluster, caCertPem, stored, text } = options;
  let offered: AdminKubeconfig;
  try {
    offered = parseAdminKubeconfig(text);
    assertClusterKubeconfig(offered, { caCertPem, endpoint: clusterEndpoint(cluster) });
  } catch (error) {
    if (error instanceof ClusterApiError) throw badRequest(`adminKubeconfig: ${error.message}`, 'adminKubeconfig');
    throw error;
  }
  if (offered.clientCertPem === undefined) throw badRequest('adminKubeconfig: it holds no client certificate', 'adminKubeconfig');
  const cert = new X509Certificate(offered.clientCertPem);
  if (!cert.verify(new X509Certificate(caCertPem).publicKey)) {
    throw badRequest('adminKubeconfig: its client certificate is not signed by the cluster CA', 'adminKubeconfig');
  }
  const groups = [...cert.subject.matchAll(/^O=(.*)$/gm)].map((m) => m[1]);
  if (!groups.some((group) => group !== undefined && ADMIN_GROUPS.includes(group))) {
    throw badRequest(`adminKubeconfig: its client certificate is in none of ${ADMIN_GROUPS.join(', ')}`, 'adminKubeconfig');
  }
  const keptPem = parseAdminKubeconfig(stored).clientCertPem;
  const kept = keptPem === undefined ? 0 : Date.parse(new X509Certificate(keptPem).validTo);
  return Date.parse(cert.validTo) > kept;
}
