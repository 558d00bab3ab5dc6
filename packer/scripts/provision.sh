#!/usr/bin/env bash
# Turns a freshly installed Debian/Ubuntu VM into a pke-node image. Run as root, from the
# directory Packer uploads (PKE_BUILD_DIR, default: this script's parent directory).
#
#   provision.sh              every step, in order; the last is the image self-test
#   provision.sh STEP...      only these steps (names without number, e.g. kubernetes-packages)
#
# Every step is idempotent: a rerun after a failure, or on a finished image, changes nothing
# that is already right. Settings are PKE_* environment variables; see lib.sh and README.md.
set -euo pipefail

scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$scripts/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"

PKE_RUN_DIR=$(mktemp -d)
export PKE_RUN_DIR
trap 'rm -rf "$PKE_RUN_DIR"' EXIT

steps=()
for file in "$scripts"/[0-9][0-9]-*.sh; do
  steps+=("$file")
done

selected=("$@")
for wanted in "${selected[@]}"; do
  found=""
  for file in "${steps[@]}"; do
    name=$(basename "$file" .sh)
    [[ ${name#[0-9][0-9]-} == "$wanted" ]] && found=1
  done
  [[ -n $found ]] || die "no step named '$wanted'; steps: $(for f in "${steps[@]}"; do n=$(basename "$f" .sh); printf '%s ' "${n#[0-9][0-9]-}"; done)"
done

started=$(date +%s)
for file in "${steps[@]}"; do
  name=$(basename "$file" .sh)
  name=${name#[0-9][0-9]-}
  if [[ ${#selected[@]} -gt 0 ]]; then
    match=""
    for wanted in "${selected[@]}"; do
      [[ $wanted == "$name" ]] && match=1
    done
    [[ -n $match ]] || continue
  fi
  step_started=$(date +%s)
  PKE_STEP=$name log "start"
  PKE_STEP=$name bash "$file" || PKE_STEP=$name die "step failed (exit $?); fix the cause and rerun: provision.sh $name"
  PKE_STEP=$name log "done in $(($(date +%s) - step_started))s"
done
log "image provisioned in $(($(date +%s) - started))s"
