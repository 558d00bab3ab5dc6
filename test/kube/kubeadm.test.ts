import { describe, expect, it } from 'vitest';
import { CommandError, PkeError } from '../../agent/core/errors.ts';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { silentLogger } from '../../agent/core/log.ts';
import { Host } from '../../agent/host/host.ts';
import { failedInPreflight, isTransientKubeadmError, kubeadmJoin, maskSecrets } from '../../agent/kube/kubeadm.ts';
import { KUBEADM_JOIN_CONFIG } from '../../agent/kube/paths.ts';
import { scratchDir } from '../helpers/cli.ts';

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

  it('names the first failed preflight check, and does not retry a failed image pull (the image is missing, whatever the message says)', async () => {
    // kubeadm 1.37's output on a node of the newer release joining a control plane of the older (test/e2e/real-replace-upgrade.test.ts).
    const pull = (component: string) =>
      `\t[ERROR ImagePull]: failed to pull image registry.k8s.io/${component}:v1.36.3: failed to pull and unpack image "registry.k8s.io/${component}:v1.36.3": dial tcp: lookup registry.k8s.io on 127.0.0.1:53: read udp 127.0.0.1:38987->127.0.0.1:53: read: connection refused`;
    const stderr = [
      '[preflight] Some fatal errors occurred:',
      pull('kube-apiserver'),
      pull('kube-controller-manager'),
      pull('kube-scheduler'),
      '[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`',
      'error: error execution phase preflight: preflight checks failed',
      'To see the stack trace of this error execute with --v=5 or higher',
    ].join('\n');
    // kubeadm as a script that says just that: the agent's own run of it (output streamed, the error explained).
    const dir = scratchDir('kubeadm-preflight');
    try {
      writeFileSync(path.join(dir.dir, 'stderr'), `${stderr}\n`);
      writeFileSync(path.join(dir.dir, 'kubeadm'), `#!/bin/sh\ncat '${path.join(dir.dir, 'stderr')}' >&2\nexit 1\n`, { mode: 0o755 });
      const host = new Host({ root: dir.dir, path: `${dir.dir}:/usr/bin:/bin`, log: silentLogger });
      const error = await kubeadmJoin(host, KUBEADM_JOIN_CONFIG, silentLogger).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CommandError);
      expect((error as Error).message).toBe(
        `kubeadm join --config ${KUBEADM_JOIN_CONFIG} exited 1: error: error execution phase preflight: preflight checks failed: ${pull('kube-apiserver').trim()} (and 2 more)`,
      );
      expect(isTransientKubeadmError(error)).toBe(false);
    } finally {
      dir.remove();
    }
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
