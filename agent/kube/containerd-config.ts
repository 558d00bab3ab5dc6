import type { CgroupDriver } from '../config/schema.ts';

/**
 * containerd's config, as far as Kubernetes needs it: the CRI plugin enabled and runc using the
 * site's cgroup driver, like the kubelet (kubeadm's KubeletConfiguration says the same driver).
 * containerd 2 moved the CRI runtime settings to `io.containerd.cri.v1.runtime` (config version 3);
 * it would still migrate a version 2 file on every start, with a deprecation warning.
 */

export const CONTAINERD_CONFIG = '/etc/containerd/config.toml';

export function renderContainerdConfig(containerdMajor: number, cgroupDriver: CgroupDriver): string {
  const header = `# Written by pke-agent: the CRI runtime with the ${cgroupDriver} cgroup driver, as the kubelet expects.\n`;
  const systemdCgroup = cgroupDriver === 'systemd';
  if (containerdMajor >= 2) {
    return `${header}version = 3

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = ${systemdCgroup}
`;
  }
  return `${header}version = 2

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = ${systemdCgroup}
`;
}

/**
 * Whether an existing config already does what Kubernetes needs, so that a config the image
 * builder tuned is left alone: runc's SystemdCgroup on exactly when the site's driver is systemd,
 * and the CRI plugin not disabled (as the containerd.io package ships it).
 */
export function containerdConfigFitsKubernetes(text: string, cgroupDriver: CgroupDriver): boolean {
  const systemdCgroup = /^\s*SystemdCgroup\s*=\s*true\s*$/m.test(text);
  const criDisabled = /^\s*disabled_plugins\s*=\s*\[[^\]]*["']cri["']/m.test(text);
  return systemdCgroup === (cgroupDriver === 'systemd') && !criDisabled;
}

/** The major version from `containerd --version` output, e.g. `containerd github.com/containerd/containerd v1.7.24 abc`. */
export function parseContainerdMajor(versionOutput: string): number | undefined {
  const match = /\sv?(\d+)\.\d+\.\d+/.exec(versionOutput);
  return match ? Number(match[1]) : undefined;
}
