#!/usr/bin/env bash
# Day two on control-plane nodes, from timers (both are no-ops on workers and before bootstrap):
# `pke-agent certs renew` hourly (it renews only within 90 days of an expiry, and only while it
# holds the controller's renewal claim, so that the control-plane nodes of a cluster do not
# restart their static pods at once: a node refused the claim exits 0 and tries again on the next
# run, within the hour; a controller that cannot be reached does not stop a renewal); and
# `pke-agent etcd backup` every minute (it asks the controller whether a snapshot is due from
# this node, and does nothing otherwise).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write_if_changed() {
  local target=$1 content=$2
  if [[ ! -f $target ]] || [[ $(cat "$target") != "$content" ]]; then
    printf '%s\n' "$content" >"$target"
    log "wrote $target"
  fi
}

# Only where kubeadm made a control plane: its manifests are there.
write_if_changed /etc/systemd/system/pke-certs-renew.service "[Unit]
Description=pke-agent: renew kubeadm's certificates within 90 days of their expiry
ConditionPathExists=/etc/kubernetes/manifests/kube-apiserver.yaml

[Service]
Type=oneshot
ExecStart=/usr/local/bin/pke-agent certs renew"
write_if_changed /etc/systemd/system/pke-certs-renew.timer "[Unit]
Description=pke-agent: check and renew kubeadm's certificates hourly

[Timer]
OnCalendar=hourly
RandomizedDelaySec=15min
Persistent=true

[Install]
WantedBy=timers.target"

write_if_changed /etc/systemd/system/pke-etcd-backup.service "[Unit]
Description=pke-agent: take an etcd snapshot when the controller has one due from this node
ConditionPathExists=/etc/kubernetes/manifests/etcd.yaml

[Service]
Type=oneshot
ExecStart=/usr/local/bin/pke-agent etcd backup"
write_if_changed /etc/systemd/system/pke-etcd-backup.timer "[Unit]
Description=pke-agent: ask the controller every minute whether an etcd snapshot is due

[Timer]
OnBootSec=2min
OnUnitActiveSec=60s

[Install]
WantedBy=timers.target"

for timer in pke-certs-renew.timer pke-etcd-backup.timer; do
  systemctl enable "$timer"
  systemctl is-enabled --quiet "$timer" || die "$timer is not enabled after systemctl enable"
done
