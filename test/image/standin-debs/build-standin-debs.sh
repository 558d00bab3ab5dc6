#!/usr/bin/env bash
# Builds STAND-IN .deb packages for kubeadm, kubelet, kubectl and cri-tools, which cannot be
# fetched on the test machine. They install where the real packages do, carry the real
# package names and dependencies, and their binaries only answer version queries with the
# pinned version; anything else fails loudly. Used by test/image/provision.test.ts as the
# "local packages" (air-gapped) source of the image build.
#
#   build-standin-debs.sh OUT_DIR KUBERNETES_VERSION CRICTL_VERSION
set -euo pipefail

out=$1
kube=${2#v}
crictl=${3#v}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# package version binary depends script [extra-file-path extra-file-content]
build() {
  local package=$1 version=$2 binary=$3 depends=$4 script=$5
  local root=$work/$package
  mkdir -p "$root/DEBIAN" "$root/usr/bin"
  {
    printf 'Package: %s\nVersion: %s-1.1\nArchitecture: %s\nMaintainer: pke-agent tests <tests@pke.invalid>\n' \
      "$package" "$version" "$(dpkg --print-architecture)"
    [[ -z $depends ]] || printf 'Depends: %s\n' "$depends"
    printf 'Section: admin\nPriority: optional\n'
    printf 'Description: STAND-IN %s for pke-agent image tests, not the real program\n' "$binary"
    printf ' Answers version queries with %s and exits 0; every other use exits 1.\n' "$version"
  } > "$root/DEBIAN/control"
  printf '#!/bin/sh\n# STAND-IN %s %s (pke-agent test/image/standin-debs)\n%s\necho "stand-in %s: only version queries are implemented (got: $*)" >&2\nexit 1\n' \
    "$binary" "$version" "$script" "$binary" > "$root/usr/bin/$binary"
  chmod 0755 "$root/usr/bin/$binary"
  if [[ $# -ge 7 ]]; then
    mkdir -p "$root/$(dirname "$6")"
    printf '%s\n' "$7" > "$root/$6"
  fi
  dpkg-deb --root-owner-group -Zgzip --build "$root" "$out/${package}_${version}-1.1_$(dpkg --print-architecture).deb" >/dev/null
}

build kubeadm "$kube" kubeadm "kubelet (>= $kube), kubectl (>= $kube), cri-tools" "
case \"\$*\" in
  'version -o short') echo v$kube; exit 0 ;;
  version) echo 'kubeadm version: &version.Info{Major:\"${kube%%.*}\", GitVersion:\"v$kube\", Platform:\"linux/amd64\"}'; exit 0 ;;
esac"

build kubelet "$kube" kubelet "" "
case \"\$*\" in
  --version) echo 'Kubernetes v$kube'; exit 0 ;;
esac" lib/systemd/system/kubelet.service "[Unit]
Description=kubelet STAND-IN (pke-agent image tests)
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always

[Install]
WantedBy=multi-user.target"

build kubectl "$kube" kubectl "" "
case \"\$*\" in
  'version --client -o json') printf '{\"clientVersion\":{\"major\":\"%s\",\"gitVersion\":\"v$kube\",\"platform\":\"linux/amd64\"}}\n' '${kube%%.*}'; exit 0 ;;
  'version --client') echo 'Client Version: v$kube'; exit 0 ;;
esac"

build cri-tools "$crictl" crictl "" "
case \"\$*\" in
  --version) echo 'crictl version v$crictl'; exit 0 ;;
esac"
