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
