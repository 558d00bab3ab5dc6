import { issueCertificate, type CertifiedKey } from '../clusters/pki.ts';
import { httpsClusterEtcd, type ClusterEtcd } from '../kubernetes/cluster-etcd.ts';
import { byRegistration } from '../clusters/cluster-records.ts';
import type { ClusterState } from '../store/state.ts';
import type { PkiFile } from '../../protocol/api.ts';

/** kubeadm's etcd serves clients on every control-plane node's address at this port. */
export const ETCD_CLIENT_PORT = 2379;

/** Where the controller finds a control-plane node's etcd; tests point it at etcd on loopback. */
export type EtcdEndpointOf = (node: { name: string; primaryIp: string }) => string;

export const defaultEtcdEndpoint: EtcdEndpointOf = (node) => `https://${node.primaryIp}:${ETCD_CLIENT_PORT}`;

/**
 * The controller's client certificates of each cluster's etcd CA (CN pke-controller), made on
 * first use and kept in memory only: the etcd CA key is the controller's already.
 */
export class EtcdAccess {
  private readonly certificates = new Map<string, Promise<CertifiedKey>>();
  private readonly endpointOf: EtcdEndpointOf;

  constructor(endpointOf: EtcdEndpointOf = defaultEtcdEndpoint) {
    this.endpointOf = endpointOf;
  }

  /** A client of the cluster's etcd, seeded with its registered control-plane nodes; close it after use. */
  async connect(cluster: ClusterState, pki: Record<PkiFile, string>): Promise<ClusterEtcd> {
    let certificate = this.certificates.get(cluster.id);
    if (!certificate) {
      certificate = issueCertificate(
        { certPem: pki['etcd/ca.crt'], keyPem: pki['etcd/ca.key'] },
        { commonName: 'pke-controller', usage: 'client', validDays: 365 },
      );
      this.certificates.set(cluster.id, certificate);
      certificate.catch(() => this.certificates.delete(cluster.id));
    }
    const { certPem, keyPem } = await certificate;
    const endpoints = Object.values(cluster.nodes)
      .filter((n) => n.role === 'master' && n.registration !== undefined && n.removedAt === undefined)
      .sort(byRegistration)
      .map((n) => this.endpointOf({ name: n.name, primaryIp: n.registration?.primaryIp ?? '' }));
    return httpsClusterEtcd({ caPem: pki['etcd/ca.crt'], certPem, keyPem, endpoints });
  }
}
