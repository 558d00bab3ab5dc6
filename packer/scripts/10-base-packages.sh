#!/usr/bin/env bash
# What every node needs from the OS: systemd, the VMware guest tools and cloud-init (guestinfo
# and first boot), keepalived (API VIP), and the tools kubeadm's preflight asks for.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

packages=(
  systemd systemd-sysv dbus ca-certificates curl gnupg
  open-vm-tools cloud-init keepalived
  iproute2 iptables conntrack socat ethtool ebtables kmod procps util-linux mount
)

missing=()
for package in "${packages[@]}"; do
  [[ -n $(installed_version "$package") ]] || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#packages[@]} base packages present"
  exit 0
fi

# Air-gapped sites may ship these as .debs too; anything not found there comes from apt.
targets=()
for package in "${missing[@]}"; do
  if [[ $PKE_PACKAGE_SOURCE == local ]] && deb=$(local_deb "$package"); then
    targets+=("$deb")
  else
    targets+=("$package")
  fi
done
log "installing: ${missing[*]}"
apt_update_once
apt_install "${targets[@]}"
