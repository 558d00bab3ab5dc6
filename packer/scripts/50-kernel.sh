#!/usr/bin/env bash
# Kernel modules and sysctls Kubernetes networking needs, loaded at every boot. The files are the
# agent's own (agent/node/kernel.ts, written out by scripts/write-kernel-files.ts), so its
# host-prep finds them in place on a node from this image.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Each file at its path on the node, below kernel/.
files=$(dirname "${BASH_SOURCE[0]}")/kernel
for source in "$files"/etc/*/*.conf; do
  write_file "${source#"$files"}" < "$source"
done

if in_chroot; then
  log "in a chroot: not loading modules or applying sysctls into the running kernel"
else
  mapfile -t modules < <(grep -hv '^#' "$files"/etc/modules-load.d/*.conf)
  modprobe -a "${modules[@]}"
  sysctl --quiet --system
fi
