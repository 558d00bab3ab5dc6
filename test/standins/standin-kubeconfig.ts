// STAND-IN support, for tests only: a kubeconfig as kubeadm writes one (admin.conf, kubelet.conf,
// ...): the cluster CA inline, one cluster, user and context, and the client certificate inline
// or, as in the kubelet's kubelet.conf, named by a file holding certificate and key. Written out
// by hand rather than through a YAML library, so that the API server stand-in, which serves
// admin.conf's credentials, loads none. The server URL is a plain YAML scalar, as kubeadm writes it.

export interface KubeconfigInput {
  clusterName: string;
  server: string;
  user: string;
  caPem: string;
  /** The client certificate and key inline, or the node path of the file that holds both. */
  client: { certPem: string; keyPem: string } | { file: string };
}

export function renderKubeconfig({ clusterName, server, user, caPem, client }: KubeconfigInput): string {
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
    ...('file' in client
      ? [`    client-certificate: ${client.file}`, `    client-key: ${client.file}`]
      : [`    client-certificate-data: ${b64(client.certPem)}`, `    client-key-data: ${b64(client.keyPem)}`]),
    '',
  ].join('\n');
}
