#!/usr/bin/env bash
# Pulls the control-plane images into containerd so first boot does not wait on the registry.
# Skipped (and said so) when disabled, when the registry cannot be reached, or when containerd
# is not running (a chroot build).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

skip() {
  log "SKIPPED pre-pulling control-plane images: $*"
  exit 0
}

[[ $PKE_PREPULL_IMAGES == true ]] || skip "PKE_PREPULL_IMAGES=$PKE_PREPULL_IMAGES"
registry_host=${PKE_IMAGE_REGISTRY%%/*}
code=$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "https://$registry_host/v2/" || true)
[[ $code != 000 && -n $code ]] || skip "registry $registry_host is not reachable (https://$registry_host/v2/)"
[[ -S /run/containerd/containerd.sock ]] || skip "containerd is not running (no /run/containerd/containerd.sock)"

kubeadm config images pull \
  --kubernetes-version "v$PKE_KUBERNETES_VERSION" \
  --image-repository "$PKE_IMAGE_REGISTRY" \
  --cri-socket unix:///run/containerd/containerd.sock
touch "${PKE_RUN_DIR:-/tmp}/images-prepulled"
