# shellcheck shell=bash
# Shared by provision.sh and its steps (sourced, not run). Every setting is a PKE_* variable,
# checked once here.

log() {
  printf '[pke-image] %s: %s\n' "${PKE_STEP:-provision}" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# Versions and package names go into file names, apt arguments and JSON: keep them plain.
require_plain() {
  local name=$1 value=$2
  [[ $value =~ ^[A-Za-z0-9][A-Za-z0-9.+~:_-]*$ ]] || die "$name='$value' is not a plain version or package name"
}

# True when a version (a binary's report, or a .deb's Version) matches a pin: equal, or the
# pin followed by a Debian/semver suffix. Pin 1.6.20 matches 1.6.20~ds1-1+deb12u3 and v1.6.20,
# not 1.6.201.
pin_matches() {
  local version=${1#v} pin=${2#v}
  version=${version#*:}
  [[ $version == "$pin" || $version == "$pin"[-~+]* ]]
}

# Builds run on a VM; the test suite runs the same scripts in a chroot, where nothing may be
# loaded into the (shared) kernel and no service may be started.
in_chroot() {
  [[ -r /proc/1/root ]] || return 0
  [[ "$(stat -c %d:%i /)" != "$(stat -c %d:%i /proc/1/root/. 2>/dev/null)" ]]
}

systemd_running() {
  [[ -d /run/systemd/system ]] && ! in_chroot
}

# Installed version of a package (held or not), or nothing.
installed_version() {
  { dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null || true; } | awk 'substr($1, 2, 1) == "i" { print $2 }'
}

# The .deb in PKE_LOCAL_PACKAGES_DIR that provides package $1 (at pin $2 when given).
local_deb() {
  local package=$1 pin=${2:-} deb name version
  shopt -s nullglob
  for deb in "$PKE_LOCAL_PACKAGES_DIR"/*.deb; do
    name=$(dpkg-deb -f "$deb" Package)
    [[ $name == "$package" ]] || continue
    version=$(dpkg-deb -f "$deb" Version)
    if [[ -z $pin ]] || pin_matches "$version" "$pin"; then
      printf '%s\n' "$deb"
      return 0
    fi
  done
  return 1
}

# "name version" of every .deb in PKE_LOCAL_PACKAGES_DIR, for error messages.
local_debs_summary() {
  local deb
  shopt -s nullglob
  for deb in "$PKE_LOCAL_PACKAGES_DIR"/*.deb; do
    printf '%s %s; ' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)"
  done
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    --allow-downgrades --allow-change-held-packages "$@"
}

# Once per provision.sh run (steps are separate processes; the marker lives in its run dir).
apt_update_once() {
  local marker=${PKE_RUN_DIR:-/tmp}/apt-updated
  [[ -e $marker ]] && return 0
  log "apt-get update"
  apt-get update -q
  touch "$marker"
}

# Writes stdin to a file only when the content differs, so reruns leave mtimes alone.
write_file() {
  local path=$1 mode=${2:-0644} tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 0
  fi
  install -D -m "$mode" "$tmp" "$path"
  rm -f "$tmp"
  log "wrote $path"
}

: "${PKE_BUILD_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${PKE_KUBERNETES_VERSION:?set PKE_KUBERNETES_VERSION, e.g. 1.31.2}"
: "${PKE_CONTAINERD_VERSION:?set PKE_CONTAINERD_VERSION, e.g. 1.6.20}"
: "${PKE_RUNC_VERSION:?set PKE_RUNC_VERSION, e.g. 1.1.5}"
: "${PKE_CRICTL_VERSION:?set PKE_CRICTL_VERSION, e.g. 1.31.1}"
: "${PKE_CONTAINERD_PACKAGE:=containerd}"
: "${PKE_RUNC_PACKAGE=runc}"
: "${PKE_PACKAGE_SOURCE:=apt}"
: "${PKE_LOCAL_PACKAGES_DIR:=$PKE_BUILD_DIR/packages}"
: "${PKE_K8S_APT_REPO_URL:=}"
: "${PKE_K8S_APT_KEY_URL:=}"
: "${PKE_IMAGE_REGISTRY:=registry.k8s.io}"
: "${PKE_PREPULL_IMAGES:=true}"
: "${PKE_AGENT_SOURCE:=$PKE_BUILD_DIR/pke-agent}"
: "${PKE_CLOUD_INIT_SOURCE:=$PKE_BUILD_DIR/cloud-init}"
: "${PKE_ADDONS_SOURCE:=$PKE_BUILD_DIR/addons}"

PKE_KUBERNETES_VERSION=${PKE_KUBERNETES_VERSION#v}
for pin in PKE_KUBERNETES_VERSION PKE_CONTAINERD_VERSION PKE_RUNC_VERSION PKE_CRICTL_VERSION PKE_CONTAINERD_PACKAGE; do
  require_plain "$pin" "${!pin}"
done
[[ -z $PKE_RUNC_PACKAGE ]] || require_plain PKE_RUNC_PACKAGE "$PKE_RUNC_PACKAGE"
[[ $PKE_IMAGE_REGISTRY =~ ^[A-Za-z0-9][A-Za-z0-9./:_-]*$ ]] || die "PKE_IMAGE_REGISTRY='$PKE_IMAGE_REGISTRY' is not a registry host[/path]"
case $PKE_PACKAGE_SOURCE in
  apt | local) ;;
  *) die "PKE_PACKAGE_SOURCE='$PKE_PACKAGE_SOURCE': expected apt or local" ;;
esac

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive
