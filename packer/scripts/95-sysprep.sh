#!/usr/bin/env bash
# Makes every clone its own machine: no machine-id, no cloud-init state from the build, no SSH
# host keys, no logs or leases, and no stale 127.0.1.1 line naming the build VM.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt-get clean
rm -rf /var/lib/apt/lists/*

# Empty, not missing: systemd fills it in at first boot (a missing file breaks read-only /etc).
truncate -s 0 /etc/machine-id
install -d -m 0755 /var/lib/dbus
ln -sfn /etc/machine-id /var/lib/dbus/machine-id

cloud-init clean --logs --seed
rm -f /etc/ssh/ssh_host_*
# The vsphere-iso preseed's NOPASSWD rule for the build user (later Packer steps use sudo -S).
rm -f /etc/sudoers.d/90-pke-build

sed -i '/^127\.0\.1\.1[[:space:]]/d' /etc/hosts
rm -f /var/lib/dhcp/*.leases /var/lib/NetworkManager/*.lease /var/lib/systemd/network/*.lease
rm -rf /var/lib/systemd/random-seed /root/.bash_history /root/.ssh/known_hosts

find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /var/log/journal/*
log "machine-id emptied, cloud-init cleaned, SSH host keys and logs removed"
