// STAND-IN support, for tests only: the certificates and kubeconfigs kubeadm writes, signed by
// the cluster CAs the way kubeadm signs them (subjects, SANs, usages), made as the controller's
// own PKI code (agent/controller/pki.ts) makes them (see standin-x509.ts). The leaf keys are
// ECDSA P-256, as kubeadm makes them with `encryptionAlgorithm: ECDSA-P256`, not its default
// RSA-2048: an RSA key costs the stand-in tens to hundreds of milliseconds of CPU each, an ECDSA
// key well under one (the CAs stay RSA).
import { isIP } from 'node:net';
import type { CertifiedKey, LeafOptions } from '../../agent/controller/clusters/pki.ts';
import { PKI_FILES } from '../../agent/protocol/api.ts';
import { readNodeFile, writeNodeFile } from './standin-common.ts';
import { renderKubeconfig } from './standin-kubeconfig.ts';
import { issueEcdsaLeaf } from './standin-x509.ts';

export const PKI = '/etc/kubernetes/pki';
/** The files control-plane nodes share (the controller hands them out); kubeadm makes the rest from them. */
export const SHARED_PKI = PKI_FILES;

export interface ControlPlaneIdentity {
  nodeName: string;
  advertiseAddress: string;
  /** controlPlaneEndpoint's host (the VIP). */
  endpointHost: string;
  serviceSubnet: string;
  dnsDomain: string;
  certSANs: string[];
}

export function loadCa(prefix: string): CertifiedKey {
  const certPem = readNodeFile(`${PKI}/${prefix}.crt`);
  const keyPem = readNodeFile(`${PKI}/${prefix}.key`);
  if (!certPem || !keyPem) throw new Error(`${PKI}/${prefix}.crt and .key are required`);
  return { certPem, keyPem };
}

/** apiserver, its kubelet and etcd clients, front-proxy client and the etcd certificates of one control-plane node. */
export function writeControlPlaneCerts(id: ControlPlaneIdentity, clusterAdminsGroup: boolean): string[] {
  const ca = loadCa('ca');
  const etcdCa = loadCa('etcd/ca');
  const frontProxyCa = loadCa('front-proxy-ca');
  const apiServerSans = [
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    `kubernetes.default.svc.${id.dnsDomain}`,
    id.nodeName,
    firstServiceIp(id.serviceSubnet),
    id.advertiseAddress,
    id.endpointHost,
    ...id.certSANs,
  ];
  const etcdSans = ['localhost', id.nodeName, id.advertiseAddress, '127.0.0.1', '::1'];
  const plan: [string, CertifiedKey, Omit<LeafOptions, 'keyType'>][] = [
    ['apiserver', ca, { commonName: 'kube-apiserver', altNames: unique(apiServerSans), usage: 'server', validDays: 365 }],
    [
      'apiserver-kubelet-client',
      ca,
      {
        commonName: 'kube-apiserver-kubelet-client',
        organizations: [clusterAdminsGroup ? 'kubeadm:cluster-admins' : 'system:masters'],
        usage: 'client',
        validDays: 365,
      },
    ],
    ['front-proxy-client', frontProxyCa, { commonName: 'front-proxy-client', usage: 'client', validDays: 365 }],
    ['etcd/server', etcdCa, { commonName: id.nodeName, altNames: etcdSans, usage: 'server-and-client', validDays: 365 }],
    ['etcd/peer', etcdCa, { commonName: id.nodeName, altNames: etcdSans, usage: 'server-and-client', validDays: 365 }],
    ['etcd/healthcheck-client', etcdCa, { commonName: 'kube-etcd-healthcheck-client', usage: 'client', validDays: 365 }],
    ['apiserver-etcd-client', etcdCa, { commonName: 'kube-apiserver-etcd-client', usage: 'client', validDays: 365 }],
  ];
  const issued = plan.map(([name, signer, options]) => [name, issueEcdsaLeaf(signer, options)] as const);
  for (const [name, pair] of issued) {
    writeNodeFile(`${PKI}/${name}.crt`, pair.certPem);
    writeNodeFile(`${PKI}/${name}.key`, pair.keyPem, 0o600);
  }
  return unique(apiServerSans);
}

export interface KubeconfigSpec {
  file: string;
  clusterName: string;
  server: string;
  user: string;
  commonName: string;
  organizations?: string[];
  /** Where the client certificate and key go instead of inline (kubelet.conf's rotating certificate). */
  clientFile?: string;
}

/** Kubeconfigs with the CA inline and the client certificate inline or in `clientFile`, as kubeadm writes them (mode 0600). */
export function writeKubeconfigs(ca: CertifiedKey, specs: KubeconfigSpec[]): void {
  const issued = specs.map(
    (spec) =>
      [
        spec,
        issueEcdsaLeaf(ca, { commonName: spec.commonName, organizations: spec.organizations, usage: 'client', validDays: 365 }),
      ] as const,
  );
  for (const [spec, pair] of issued) {
    if (spec.clientFile) writeNodeFile(spec.clientFile, `${pair.certPem}${pair.keyPem}`, 0o600);
    const client = spec.clientFile ? { file: spec.clientFile } : pair;
    writeNodeFile(
      spec.file,
      renderKubeconfig({ clusterName: spec.clusterName, server: spec.server, user: spec.user, caPem: ca.certPem, client }),
      0o600,
    );
  }
}

/** The first address of the service range: the `kubernetes` Service's ClusterIP. */
function firstServiceIp(subnet: string): string {
  const [base = ''] = subnet.split('/');
  if (isIP(base) !== 4) return base;
  const parts = base.split('.').map(Number);
  parts[3] = (parts[3] ?? 0) + 1;
  return parts.join('.');
}

function unique(values: string[]): string[] {
  return [...new Set(values.filter(Boolean))];
}
