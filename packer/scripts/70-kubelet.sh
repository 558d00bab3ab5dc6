#!/usr/bin/env bash
# kubelet starts at boot once kubeadm has configured it; until then it would only crash-loop,
# so it is enabled but not running in the image.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

systemctl enable kubelet.service
if systemd_running; then
  systemctl stop kubelet.service
fi
systemctl is-enabled --quiet kubelet.service || die "kubelet.service is not enabled after systemctl enable"
