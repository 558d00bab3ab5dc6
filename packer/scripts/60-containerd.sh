#!/usr/bin/env bash
# containerd with the systemd cgroup driver (what kubeadm configures the kubelet for), and
# crictl pointed at it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

config=$(containerd config default)
grep -q 'SystemdCgroup = ' <<<"$config" || die "containerd config default has no SystemdCgroup option; containerd $PKE_CONTAINERD_VERSION is not supported"
printf '%s\n' "${config//SystemdCgroup = false/SystemdCgroup = true}" | write_file /etc/containerd/config.toml

write_file /etc/crictl.yaml <<'CONF'
runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock
timeout: 10
CONF

if systemd_running; then
  systemctl enable containerd >/dev/null
  systemctl restart containerd
fi
