#!/usr/bin/env bash
# Last: the agent checks that everything a node needs is in the image at the pinned versions.
# A failure here fails the Packer build.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

/usr/local/bin/pke-agent preflight --image
