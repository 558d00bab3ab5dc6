#!/usr/bin/env bash
# The pke-agent executable that cloud-init runs at first boot.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -f $PKE_AGENT_SOURCE ]] || die "no agent binary at $PKE_AGENT_SOURCE"
if ! cmp -s "$PKE_AGENT_SOURCE" /usr/local/bin/pke-agent; then
  install -D -m 0755 "$PKE_AGENT_SOURCE" /usr/local/bin/pke-agent
  log "installed /usr/local/bin/pke-agent"
fi
install -d -m 0755 /etc/pke-agent
/usr/local/bin/pke-agent version >&2 || die "/usr/local/bin/pke-agent does not run on this OS"

# keepalived starts when the agent has configured it, and comes back at boot only once the
# node's config is final (the vip phase enables it). Debian enables it on install; the leader's
# config from before kubeadm init (which takes the VIP at once) must never come back at boot on a
# node that lost the election meanwhile.
systemctl disable --quiet keepalived.service
! systemctl is-enabled --quiet keepalived.service || die "keepalived.service is still enabled after systemctl disable"

# keepalived's unicast peers follow the control-plane nodes the controller knows: a node that
# joins later is added on the others by `pke-agent vip sync` (a no-op on workers, before the
# node's own vip phase, and while a bootstrap runs).
write_if_changed() {
  local target=$1 content=$2
  if [[ ! -f $target ]] || [[ $(cat "$target") != "$content" ]]; then
    printf '%s\n' "$content" >"$target"
    log "wrote $target"
  fi
}
write_if_changed /etc/systemd/system/pke-vip-sync.service "[Unit]
Description=pke-agent: keep keepalived's peers in line with the cluster's control-plane nodes
ConditionPathExists=/var/lib/pke-agent/journal.json

[Service]
Type=oneshot
ExecStart=/usr/local/bin/pke-agent vip sync"
write_if_changed /etc/systemd/system/pke-vip-sync.timer "[Unit]
Description=pke-agent: sync keepalived's peers every 30 s

[Timer]
OnBootSec=60s
OnUnitActiveSec=30s

[Install]
WantedBy=timers.target"
systemctl enable pke-vip-sync.timer
systemctl is-enabled --quiet pke-vip-sync.timer || die "pke-vip-sync.timer is not enabled after systemctl enable"
