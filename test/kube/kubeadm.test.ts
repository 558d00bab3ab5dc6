import { describe, expect, it } from 'vitest';
import { CommandError, PkeError } from '../../agent/core/errors.ts';
import { failedInPreflight, isTransientKubeadmError, maskSecrets } from '../../agent/kube/kubeadm.ts';

const joinFailure = (stderr: string) => new CommandError('kubeadm join --config /etc/kubernetes/pke/kubeadm-join.yaml', 1, stderr);

describe('kubeadm errors', () => {
  it.each([
    'error execution phase etcd-join: error creating local etcd static pod manifest file: etcdserver: too many learner members in cluster',
    'error execution phase preflight: couldn\'t validate the identity of the API Server: Get "https://10.10.0.100:6443/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp 10.10.0.100:6443: connect: connection refused',
    'error execution phase preflight: couldn\'t validate the identity of the API Server: Get "https://10.10.0.100:6443/...": dial tcp 10.10.0.100:6443: i/o timeout',
    // No node answers ARP for the VIP for a moment (keepalived between holders).
    'error execution phase preflight: couldn\'t validate the identity of the API Server: Get "https://10.10.0.100:6443/...": dial tcp 10.10.0.100:6443: connect: no route to host',
    'error execution phase etcd-join: error creating local etcd static pod manifest file: etcdserver: leader changed',
    'error execution phase kubelet-start: timed out waiting for the condition',
    'error execution phase preflight: couldn\'t validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "abcdef"',
  ])('retries %s', (stderr) => {
    expect(isTransientKubeadmError(joinFailure(stderr))).toBe(true);
  });

  it.each([
    'error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists',
    'error execution phase preflight: couldn\'t validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "sha256:00" are pinned',
    'no kind "JoinConfiguration" is registered for version "kubeadm.k8s.io/v1beta4"',
  ])('does not retry %s', (stderr) => {
    expect(isTransientKubeadmError(joinFailure(stderr))).toBe(false);
  });

  it('retries only what kubeadm said, not errors from elsewhere', () => {
    expect(isTransientKubeadmError(new PkeError('controller POST /join: connection refused'))).toBe(false);
    expect(isTransientKubeadmError(new Error('timed out'))).toBe(false);
  });

  it('tells a preflight failure (nothing changed) from a later one', () => {
    expect(failedInPreflight(joinFailure('error execution phase preflight: [preflight] Some fatal errors occurred:'))).toBe(true);
    expect(failedInPreflight(joinFailure('error execution phase kubelet-start: timed out waiting for the condition'))).toBe(false);
  });

  it('masks bootstrap tokens and certificate keys in kubeadm output', () => {
    const line = `kubeadm join 10.10.0.100:6443 --token abcdef.0123456789abcdef --control-plane --certificate-key ${'a1'.repeat(32)}`;
    expect(maskSecrets(line)).toBe(
      'kubeadm join 10.10.0.100:6443 --token [token withheld] --control-plane --certificate-key [key withheld]',
    );
    expect(maskSecrets('token id "abcdef" is invalid')).toBe('token id "abcdef" is invalid');
  });
});
