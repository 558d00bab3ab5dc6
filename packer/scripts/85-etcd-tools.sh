#!/usr/bin/env bash
# etcdctl and etcdutl for `pke-agent etcd backup` and `pke-agent restore`, at exactly the etcd
# version this Kubernetes release's kubeadm deploys: copied out of the etcd image the previous
# step pulled (registry.k8s.io/etcd carries both in /usr/local/bin), so no other download is
# needed. Skipped (and said so) when the images were not pre-pulled; the day-two commands then
# need them on PATH from elsewhere.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -f ${PKE_RUN_DIR:-/tmp}/images-prepulled ]] || {
  log "SKIPPED etcdctl and etcdutl: the control-plane images were not pre-pulled"
  exit 0
}

image=$(kubeadm config images list --kubernetes-version "v$PKE_KUBERNETES_VERSION" --image-repository "$PKE_IMAGE_REGISTRY" | grep '/etcd:')
[[ -n $image ]] || die "kubeadm lists no etcd image for v$PKE_KUBERNETES_VERSION"
mountpoint=$(mktemp -d)
ctr -n k8s.io images mount "$image" "$mountpoint" >/dev/null
trap 'ctr -n k8s.io images unmount "$mountpoint" >/dev/null 2>&1 || true; rmdir "$mountpoint"' EXIT
for tool in etcdctl etcdutl; do
  [[ -x $mountpoint/usr/local/bin/$tool ]] || die "$image has no /usr/local/bin/$tool"
  install -m 0755 "$mountpoint/usr/local/bin/$tool" "/usr/local/bin/$tool"
  log "installed /usr/local/bin/$tool from $image ($("/usr/local/bin/$tool" version 2>/dev/null | head -1))"
done
