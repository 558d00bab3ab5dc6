#!/usr/bin/env bash
# Kernel modules and sysctls Kubernetes networking needs, loaded at every boot.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write_file /etc/modules-load.d/pke-kubernetes.conf <<'CONF'
# pke-node: container overlay filesystem and bridged traffic through iptables
overlay
br_netfilter
CONF

write_file /etc/sysctl.d/90-pke-kubernetes.conf <<'CONF'
# pke-node: pod traffic crosses bridges and is forwarded between interfaces
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
net.ipv6.conf.all.forwarding = 1
CONF

if in_chroot; then
  log "in a chroot: not loading modules or applying sysctls into the running kernel"
else
  modprobe overlay
  modprobe br_netfilter
  sysctl --quiet --system
fi
