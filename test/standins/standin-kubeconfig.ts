// STAND-IN support, for tests only: a kubeconfig as kubeadm writes one (admin.conf, kubelet.conf,
// ...): the cluster CA and a client certificate inline, one cluster, user and context. Written out
// by hand rather than through a YAML library, so that the API server stand-in, which serves
// admin.conf's credentials, loads none. The server URL is a plain YAML scalar, as kubeadm writes it.

export interface KubeconfigInput {
  clusterName: string;
  server: string;
  user: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

export function renderKubeconfig({ clusterName, server, user, caPem, certPem, keyPem }: KubeconfigInput): string {
  const b64 = (pem: string) => Buffer.from(pem).toString('base64');
  const context = `${user}@${clusterName}`;
  return [
    'apiVersion: v1',
    'clusters:',
    '- cluster:',
    `    certificate-authority-data: ${b64(caPem)}`,
    `    server: ${server}`,
    `  name: ${clusterName}`,
    'contexts:',
    '- context:',
    `    cluster: ${clusterName}`,
    `    user: ${user}`,
    `  name: ${context}`,
    `current-context: ${context}`,
    'kind: Config',
    'preferences: {}',
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate-data: ${b64(certPem)}`,
    `    client-key-data: ${b64(keyPem)}`,
    '',
  ].join('\n');
}
