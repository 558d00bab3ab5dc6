import { homedir } from 'node:os';
import path from 'node:path';

/**
 * The Kubernetes releases this project builds from their Go modules and tests against: the
 * newest one the module proxy serves and one minor older (version-aware configs, upgrades).
 * `etcd` is what that release's kubeadm deploys (`DefaultEtcdVersion` in kubeadm's constants,
 * without the image's `-0` suffix); `pause` is its sandbox image.
 */
export interface KubernetesRelease {
  version: string;
  etcd: string;
  pause: string;
}

export const KUBERNETES_RELEASES: readonly KubernetesRelease[] = [
  { version: '1.37.2', etcd: '3.7.0', pause: '3.10.2' },
  { version: '1.36.3', etcd: '3.6.8', pause: '3.10.2' },
];

export const NEWEST_RELEASE = KUBERNETES_RELEASES[0]!;

/** The commands built from k8s.io/kubernetes/cmd/. */
export const KUBERNETES_COMMANDS = [
  'kubeadm',
  'kubelet',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
] as const;
export type KubernetesCommand = (typeof KUBERNETES_COMMANDS)[number];

/** The commands built from go.etcd.io/etcd (etcdutl: offline snapshot status and restore, which etcdctl no longer does). */
export const ETCD_COMMANDS = ['etcd', 'etcdctl', 'etcdutl'] as const;
export type EtcdCommand = (typeof ETCD_COMMANDS)[number];

/**
 * Where built binaries live: outside the clone, so that every clone and CI run on this machine
 * reuses them (as the Go module and build caches, which stay where `go env` puts them).
 */
export function kubernetesCacheRoot(): string {
  if (process.env.PKE_KUBERNETES_CACHE) return path.resolve(process.env.PKE_KUBERNETES_CACHE);
  if (process.getuid?.() === 0) return '/var/cache/pke-agent/kubernetes';
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'pke-agent/kubernetes');
}

export function kubernetesBinDir(version: string): string {
  return path.join(kubernetesCacheRoot(), `v${version}`, 'bin');
}

export function etcdBinDir(etcdVersion: string): string {
  return path.join(kubernetesCacheRoot(), `etcd-v${etcdVersion}`, 'bin');
}

/** Why the last build failed, one line, for the tests that then skip. Removed by a build that succeeds. */
export function lastBuildErrorFile(): string {
  return path.join(kubernetesCacheRoot(), 'last-build-error');
}

export function findRelease(version: string): KubernetesRelease | undefined {
  return KUBERNETES_RELEASES.find((release) => release.version === version.replace(/^v/, ''));
}
