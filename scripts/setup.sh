#!/bin/sh
# Installs what the tests, the lab and the benchmarks need: the npm packages (with Node 24
# among them), when running as root the Debian packages that are missing, and the real
# Kubernetes binaries and images, built from their Go modules when missing (a cold build takes
# some twenty minutes on two cores for both releases; the caches live outside the clone and are reused).
set -eu
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/vitest ] || [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund >&2; else npm install --no-audit --no-fund >&2; fi
fi

# The Node stand-ins' bundles: their wrappers would otherwise build them at first use, in the lab
# on every VM at once.
node scripts/build-standins.mjs

# command-to-check:debian-package (an absolute path is checked as a file)
NEEDED="openssl:openssl ip:iproute2 keepalived:keepalived cloud-init:cloud-init vmware-rpctool:open-vm-tools curl:curl"
# Image builder (test/image): Packer's vSphere builders, the vCenter simulator's toolchain and
# sources, the Debian chroot the provisioning scripts run in, and the scripts' linter.
NEEDED="$NEEDED packer:packer debootstrap:debootstrap shellcheck:shellcheck dpkg-deb:dpkg"
NEEDED="$NEEDED /usr/lib/go-1.19/bin/go:golang-1.19-go /usr/share/gocode/src/github.com/vmware/govmomi/simulator:golang-github-vmware-govmomi-dev"
# The real Kubernetes tier (scripts/kubernetes, scripts/lab): containerd and runc, the CNI plugins,
# what makes the images (umoci, skopeo, a C compiler and libc for pause), and what kubeadm's
# preflight and the agent's require of a node (conntrack, modprobe).
NEEDED="$NEEDED containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins umoci:umoci skopeo:skopeo"
NEEDED="$NEEDED cc:gcc /usr/include/stdio.h:libc6-dev conntrack:conntrack modprobe:kmod"
# The controller's etcd backend: its tests, the HA bench and `npm run lab -- --ha` run Debian's etcd.
NEEDED="$NEEDED /usr/bin/etcd:etcd-server /usr/bin/etcdctl:etcd-client"
# The web view's tests: a real headless browser, and a font it draws the pages and screenshots with.
NEEDED="$NEEDED chromium:chromium /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core"
missing=""
for pair in $NEEDED; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  if [ "${cmd#/}" != "$cmd" ]; then
    [ -e "$cmd" ] || missing="$missing $pkg"
  elif ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/usr/bin/$cmd" ]; then
    missing="$missing $pkg"
  fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >&2
  else
    echo "setup: missing Debian packages:$missing (not root, so not installing them; tests that need them skip)" >&2
  fi
fi

# Prometheus' own text-format parser (prom2json, from its Go module), which reads the controller's
# /metrics in the tests; built once into the cache beside the Kubernetes binaries (cold: ~3 min).
TOOLS_CACHE="${PKE_TOOLS_CACHE:-$([ "$(id -u)" -eq 0 ] && echo /var/cache/pke-agent/tools || echo "$HOME/.cache/pke-agent/tools")}"
PROM2JSON_VERSION=v1.4.2
if [ ! -x "$TOOLS_CACHE/prom2json-$PROM2JSON_VERSION/prom2json" ]; then
  if command -v go >/dev/null 2>&1 && GOBIN="$TOOLS_CACHE/prom2json-$PROM2JSON_VERSION" go install "github.com/prometheus/prom2json/cmd/prom2json@$PROM2JSON_VERSION" >&2; then
    echo "setup: built prom2json $PROM2JSON_VERSION" >&2
  else
    echo "setup: prom2json $PROM2JSON_VERSION could not be built (above); the metrics tests will skip" >&2
  fi
fi

# The real Kubernetes tier's binaries and images; without them (no Go, no module proxy) its tests
# skip naming the reason, which the build keeps in its cache's last-build-error file.
node scripts/kubernetes/build.ts || echo "setup: the real Kubernetes tier is not available (above); its tests will skip" >&2

# The upstream add-on releases that the add-on tests render and dry-run against the real API server,
# fetched through the Go module proxy into a cache outside the clone and checked against
# addons/pins.json; without them those tests skip naming the reason.
node scripts/addons/fetch.ts --cache || echo "setup: the upstream add-on bundles are not available (above); their tests will skip" >&2
