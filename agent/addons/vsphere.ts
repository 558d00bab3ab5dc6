import YAML from 'yaml';
import type { VsphereCredentials } from '../protocol/api.ts';

/**
 * What the vSphere CPI and CSI need besides their bundles: their config and the vCenter
 * credentials as Kubernetes objects, and the default StorageClass. The objects that carry the
 * password are applied through kubectl's stdin, never written to disk or logged.
 */

const CPI_NAMESPACE = 'kube-system';
const CSI_NAMESPACE = 'vmware-system-csi';
const STORAGE_CLASS_NAME = 'vsphere-csi';

/** The CPI's vsphere.conf (ConfigMap) and the credentials Secret it names, both in kube-system. */
export function renderCpiConfig(credentials: VsphereCredentials): string {
  const { server } = credentials;
  const vsphereConf = {
    global: {
      port: 443,
      insecureFlag: credentials.insecure,
      secretName: 'vsphere-cloud-secret',
      secretNamespace: CPI_NAMESPACE,
      ...(credentials.thumbprint ? { thumbprint: credentials.thumbprint } : {}),
    },
    vcenter: { [server]: { server, datacenters: credentials.datacenters } },
  };
  const configMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'vsphere-cloud-config', namespace: CPI_NAMESPACE },
    data: { 'vsphere.conf': YAML.stringify(vsphereConf) },
  };
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: 'vsphere-cloud-secret', namespace: CPI_NAMESPACE },
    stringData: { [`${server}.username`]: credentials.username, [`${server}.password`]: credentials.password },
  };
  return `${YAML.stringify(configMap)}---\n${YAML.stringify(secret)}`;
}

/** The CSI driver's csi-vsphere.conf, which holds the password, as the Secret the driver reads. */
export function renderCsiConfig(credentials: VsphereCredentials, clusterId: string): string {
  const lines = [
    '[Global]',
    `cluster-id = ${quoted(clusterId)}`,
    '',
    `[VirtualCenter ${quoted(credentials.server)}]`,
    `insecure-flag = ${quoted(String(credentials.insecure))}`,
    `user = ${quoted(credentials.username)}`,
    `password = ${quoted(credentials.password)}`,
    'port = "443"',
    `datacenters = ${quoted(credentials.datacenters.join(', '))}`,
    ...(credentials.thumbprint ? [`thumbprint = ${quoted(credentials.thumbprint)}`] : []),
  ];
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: 'vsphere-config-secret', namespace: CSI_NAMESPACE },
    stringData: { 'csi-vsphere.conf': `${lines.join('\n')}\n` },
  };
  return YAML.stringify(secret);
}

/** The cluster's default StorageClass, backed by the CSI driver. */
export function renderStorageClass(storagePolicy: string | undefined): string {
  const storageClass = {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: STORAGE_CLASS_NAME, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
    provisioner: 'csi.vsphere.vmware.com',
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'WaitForFirstConsumer',
    allowVolumeExpansion: true,
    ...(storagePolicy ? { parameters: { storagepolicyname: storagePolicy } } : {}),
  };
  return `# Rendered by pke-agent from the cluster config (addons.vsphere).\n${YAML.stringify(storageClass)}`;
}

/** A gcfg (INI) string value: the driver's parser takes backslash escapes inside double quotes. */
function quoted(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}
