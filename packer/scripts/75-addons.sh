#!/usr/bin/env bash
# The cluster add-on bundles (the upstream releases of the CNI, MetalLB and the vSphere CPI/CSI,
# with their image lists) the leader applies after kubeadm init: baked in, so nothing is
# downloaded at first boot (air-gapped sites). scripts/addons/fetch.ts fetched them on the build
# machine and checked every file against the sha256 pinned in addons/pins.json; its SHA256SUMS
# beside each bundle is checked again here, after the upload.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target=/opt/pke/addons
[[ -d $PKE_ADDONS_SOURCE ]] || die "no add-on bundles at $PKE_ADDONS_SOURCE (run scripts/addons/fetch.ts --out dist/addons before the build)"
shopt -s nullglob
bundles=("$PKE_ADDONS_SOURCE"/*/*/)
[[ ${#bundles[@]} -gt 0 ]] || die "no NAME/VERSION directories in $PKE_ADDONS_SOURCE"
for bundle in "${bundles[@]}"; do
  [[ -f $bundle/images.txt ]] || die "$bundle has no images.txt"
  [[ -f $bundle/SHA256SUMS ]] || die "$bundle has no SHA256SUMS (not written by scripts/addons/fetch.ts)"
  (cd "$bundle" && sha256sum --quiet --strict -c SHA256SUMS >&2) || die "$bundle: a file differs from its pinned sha256 (SHA256SUMS above)"
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
