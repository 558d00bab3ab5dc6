#!/usr/bin/env bash
# The cluster add-on bundle (CNI, MetalLB manifests and image lists) the leader applies after
# kubeadm init: baked in, so nothing is downloaded at first boot (air-gapped sites).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target=/opt/pke/addons
[[ -d $PKE_ADDONS_SOURCE ]] || die "no add-on bundle at $PKE_ADDONS_SOURCE (the repository's addons/ directory)"
shopt -s nullglob
bundles=("$PKE_ADDONS_SOURCE"/*/*/)
[[ ${#bundles[@]} -gt 0 ]] || die "no NAME/VERSION directories in $PKE_ADDONS_SOURCE"
for bundle in "${bundles[@]}"; do
  [[ -f $bundle/images.txt ]] || die "$bundle has no images.txt"
done

# Replaced whole, so files dropped from the repository do not linger in the image.
staged=$(mktemp -d "${PKE_RUN_DIR:-/tmp}/addons.XXXXXX")
cp -R "$PKE_ADDONS_SOURCE"/. "$staged"/
chmod -R u=rwX,go=rX "$staged"
if [[ -d $target ]] && diff -r "$staged" "$target" >/dev/null 2>&1; then
  rm -rf "$staged"
  log "$target is up to date"
  exit 0
fi
install -d -m 0755 "$(dirname "$target")"
rm -rf "$target"
mv "$staged" "$target"
chmod 0755 "$target"
log "staged ${#bundles[@]} add-on bundles in $target: $(cd "$target" && printf '%s ' */*)"
