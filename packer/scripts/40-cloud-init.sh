#!/usr/bin/env bash
# Pins cloud-init to the VMware datasource and keeps node hostnames across reboots.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

shopt -s nullglob
configs=("$PKE_CLOUD_INIT_SOURCE"/*.cfg)
[[ ${#configs[@]} -gt 0 ]] || die "no cloud-init configs in $PKE_CLOUD_INIT_SOURCE"
for config in "${configs[@]}"; do
  target=/etc/cloud/cloud.cfg.d/$(basename "$config")
  write_file "$target" < "$config"
done

# Installer leftovers that would override the datasource pin or switch cloud-init off:
# Ubuntu's subiquity writes the first two, some base templates the third.
rm -f /etc/cloud/cloud.cfg.d/99-installer.cfg \
  /etc/cloud/cloud.cfg.d/subiquity-disable-cloudinit-networking.cfg \
  /etc/cloud/cloud-init.disabled

if systemd_running; then
  systemctl enable cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service >/dev/null 2>&1 || true
fi
