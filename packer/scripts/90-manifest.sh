#!/usr/bin/env bash
# /etc/pke-agent/image.json: what this image pins, read by `pke-agent preflight --image` and
# by `pke-agent status` on a node.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

manifest=/etc/pke-agent/image.json
agent=$(/usr/local/bin/pke-agent version | awk '{ print $2; exit }')
require_plain "agent version" "$agent"
prepulled=false
[[ -e ${PKE_RUN_DIR:-/tmp}/images-prepulled ]] && prepulled=true

pinned=(kubeadm kubelet kubectl cri-tools "$PKE_CONTAINERD_PACKAGE")
[[ -z $PKE_RUNC_PACKAGE ]] || pinned+=("$PKE_RUNC_PACKAGE")
packages=""
for package in "${pinned[@]}"; do
  version=$(installed_version "$package")
  [[ -n $version ]] || die "$package is not installed"
  packages+="${packages:+,}
    \"$package\": \"$version\""
done

install -d -m 0755 /etc/pke-agent
cat > "$manifest.new" <<JSON
{
  "schemaVersion": 1,
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "versions": {
    "kubernetes": "$PKE_KUBERNETES_VERSION",
    "containerd": "$PKE_CONTAINERD_VERSION",
    "runc": "$PKE_RUNC_VERSION",
    "crictl": "$PKE_CRICTL_VERSION",
    "agent": "$agent"
  },
  "packageSource": "$PKE_PACKAGE_SOURCE",
  "packages": {$packages
  },
  "imageRegistry": "$PKE_IMAGE_REGISTRY",
  "imagesPrepulled": $prepulled
}
JSON
chmod 0644 "$manifest.new"
mv "$manifest.new" "$manifest"
log "wrote $manifest"
