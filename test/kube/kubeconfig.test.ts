import { describe, expect, it } from 'vitest';
import { ClusterApiError, parseAdminKubeconfig } from '../../agent/controller/kubernetes/cluster-api.ts';
import { KubeconfigError, loadKubeconfig, parseKubeconfig } from '../../agent/kube/kubeconfig.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

function kubeconfig(
  user: Record<string, string>,
  cluster: Record<string, string> = { 'certificate-authority-data': b64('CA PEM') },
): string {
  const lines = (fields: Record<string, string>) => Object.entries(fields).map(([key, value]) => `    ${key}: ${value}`);
  return [
    'apiVersion: v1',
    'clusters:',
    '- cluster:',
    ...lines(cluster),
    '    server: https://10.0.0.100:6443/',
    '  name: kubernetes',
    'contexts:',
    '- context:',
    '    cluster: kubernetes',
    '    user: system:node:w-1',
    '  name: default',
    'current-context: default',
    'kind: Config',
    'users:',
    '- name: system:node:w-1',
    '  user:',
    ...lines(user),
    '',
  ].join('\n');
}

describe('kubeconfig', () => {
  it('reads inline credentials of the current context', () => {
    expect(parseKubeconfig(kubeconfig({ 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') }))).toEqual({
      server: 'https://10.0.0.100:6443',
      ca: { pem: 'CA PEM' },
      clientCert: { pem: 'CERT' },
      clientKey: { pem: 'KEY' },
      token: undefined,
    });
  });

  it('follows the files kubelet.conf names, a relative one from the kubeconfig directory', async () => {
    const files: Record<string, string> = {
      '/etc/kubernetes/kubelet.conf': kubeconfig(
        {
          'client-certificate': '/var/lib/kubelet/pki/kubelet-client-current.pem',
          'client-key': '/var/lib/kubelet/pki/kubelet-client-current.pem',
        },
        { 'certificate-authority': 'pki/ca.crt' },
      ),
      '/var/lib/kubelet/pki/kubelet-client-current.pem': 'CERT AND KEY',
      '/etc/kubernetes/pki/ca.crt': 'CA FILE',
    };
    const read = async (file: string) => files[file];
    expect(await loadKubeconfig('/etc/kubernetes/kubelet.conf', read)).toEqual({
      server: 'https://10.0.0.100:6443',
      caPem: 'CA FILE',
      clientCertPem: 'CERT AND KEY',
      clientKeyPem: 'CERT AND KEY',
      token: undefined,
    });
    delete files['/etc/kubernetes/pki/ca.crt'];
    await expect(loadKubeconfig('/etc/kubernetes/kubelet.conf', read)).rejects.toThrow(
      '/etc/kubernetes/kubelet.conf: its certificate-authority /etc/kubernetes/pki/ca.crt is missing',
    );
    await expect(loadKubeconfig('/etc/kubernetes/admin.conf', read)).rejects.toThrow('/etc/kubernetes/admin.conf is missing');
  });

  it('says what is wrong with a kubeconfig it cannot use', () => {
    expect(() => parseKubeconfig('users: [')).toThrow(KubeconfigError);
    expect(() => parseKubeconfig('users: [')).toThrow(/^the kubeconfig is not YAML/);
    expect(() => parseKubeconfig(kubeconfig({ 'client-certificate-data': b64('CERT') }))).toThrow(
      'the kubeconfig user "system:node:w-1" has neither a client certificate and key nor a token',
    );
    expect(() => parseKubeconfig(kubeconfig({ token: 'abc' }).replace('current-context: default', 'current-context: other'))).toThrow(
      `the kubeconfig's current-context "other" is not among its contexts`,
    );
    expect(() => parseKubeconfig('kind: Config\n')).toThrow(/^the kubeconfig lacks current-context/);
  });

  it('is read by the controller only with its data inline', () => {
    expect(parseAdminKubeconfig(kubeconfig({ token: 'abc' }))).toEqual({
      server: 'https://10.0.0.100:6443',
      caPem: 'CA PEM',
      token: 'abc',
      clientCertPem: undefined,
      clientKeyPem: undefined,
    });
    const withFiles = kubeconfig({ 'client-certificate': '/pki/admin.crt', 'client-key': '/pki/admin.key' });
    expect(() => parseAdminKubeconfig(withFiles)).toThrow(ClusterApiError);
    expect(() => parseAdminKubeconfig(withFiles)).toThrow(
      'the kubeconfig names a file for its client-certificate (/pki/admin.crt); give it inline (client-certificate-data)',
    );
    expect(() => parseAdminKubeconfig(kubeconfig({ token: 'abc' }, {}))).toThrow(
      "the kubeconfig lacks the cluster's certificate-authority-data",
    );
  });
});
