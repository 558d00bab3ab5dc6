#!/usr/bin/env bash
# kubeadm, kubelet, kubectl, cri-tools (crictl), containerd and runc at the pinned versions,
# from a pkgs.k8s.io-style apt repository or from the .debs of an air-gapped site; then held.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

declare -A pins=(
  [kubeadm]=$PKE_KUBERNETES_VERSION
  [kubelet]=$PKE_KUBERNETES_VERSION
  [kubectl]=$PKE_KUBERNETES_VERSION
  [cri-tools]=$PKE_CRICTL_VERSION
  [$PKE_CONTAINERD_PACKAGE]=$PKE_CONTAINERD_VERSION
)
[[ -z $PKE_RUNC_PACKAGE ]] || pins[$PKE_RUNC_PACKAGE]=$PKE_RUNC_VERSION

mapfile -t packages < <(printf '%s\n' "${!pins[@]}" | sort)
pending=()
for package in "${packages[@]}"; do
  current=$(installed_version "$package")
  if [[ -n $current ]] && pin_matches "$current" "${pins[$package]}"; then
    continue
  fi
  pending+=("$package")
done

if [[ ${#pending[@]} -gt 0 ]]; then
  targets=()
  if [[ $PKE_PACKAGE_SOURCE == local ]]; then
    [[ -d $PKE_LOCAL_PACKAGES_DIR ]] || die "PKE_LOCAL_PACKAGES_DIR=$PKE_LOCAL_PACKAGES_DIR is not a directory"
    for package in "${pending[@]}"; do
      deb=$(local_deb "$package" "${pins[$package]}") ||
        die "no .deb for $package ${pins[$package]} in $PKE_LOCAL_PACKAGES_DIR (found: $(local_debs_summary))"
      targets+=("$deb")
    done
    # The bundle's other .debs (kubernetes-cni and the like) satisfy dependencies.
    shopt -s nullglob
    for deb in "$PKE_LOCAL_PACKAGES_DIR"/*.deb; do
      [[ -v pins[$(dpkg-deb -f "$deb" Package)] ]] || targets+=("$deb")
    done
  else
    repo=${PKE_K8S_APT_REPO_URL:-https://pkgs.k8s.io/core:/stable:/v${PKE_KUBERNETES_VERSION%.*}/deb/}
    key=${PKE_K8S_APT_KEY_URL:-${repo%/}/Release.key}
    keyring=/etc/apt/keyrings/pke-kubernetes.gpg
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL --retry 3 "$key" | gpg --dearmor --yes -o "$keyring.new"
    if ! cmp -s "$keyring.new" "$keyring"; then mv "$keyring.new" "$keyring"; else rm -f "$keyring.new"; fi
    chmod 0644 "$keyring"
    printf 'deb [signed-by=%s] %s /\n' "$keyring" "$repo" | write_file /etc/apt/sources.list.d/pke-kubernetes.list
    rm -f "${PKE_RUN_DIR:-/tmp}/apt-updated"
    apt_update_once
    for package in "${pending[@]}"; do
      # madison lists the newest first: the newest version that matches the pin wins.
      mapfile -t candidates < <(apt-cache madison "$package" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
      version=""
      for candidate in "${candidates[@]}"; do
        if pin_matches "$candidate" "${pins[$package]}"; then
          version=$candidate
          break
        fi
      done
      [[ -n $version ]] || die "$package ${pins[$package]} is not in the configured apt sources (available: ${candidates[*]:-none})"
      targets+=("$package=$version")
    done
  fi
  log "installing: ${targets[*]}"
  apt-mark unhold "${pending[@]}" >/dev/null 2>&1 || true
  apt_update_once
  apt_install "${targets[@]}"
fi

for package in "${packages[@]}"; do
  current=$(installed_version "$package")
  pin_matches "$current" "${pins[$package]}" || die "$package is at '${current:-not installed}', expected ${pins[$package]}"
  log "$package $current"
done
apt-mark hold "${packages[@]}" >/dev/null
