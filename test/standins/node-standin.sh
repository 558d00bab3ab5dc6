# Sourced by the wrappers of the Node stand-ins (bin/kubeadm, bin/kubectl; STAND-INS for tests
# only): runs the one the wrapper is named for (bin/kubeadm: kubeadm-standin.ts) with its arguments,
# from its bundle under .cache/standins (scripts/build-standins.mjs), built first when missing or
# older than anything it may be built from: the stand-ins, the agent, the build script, the
# installed packages.
# Node's compile cache (made on first use, shared by every stand-in run of this checkout, and
# inherited by the API server stand-in that init and join start) spares each run compiling the
# bundle's top level, some 10 ms of CPU.
repo=${0%/*}/../../..
bundle=$repo/.cache/standins/${0##*/}-standin.mjs
if [ ! -f "$bundle" ] || [ -n "$(find "$repo/test/standins" "$repo/agent" "$repo/scripts/build-standins.mjs" "$repo/node_modules/.package-lock.json" -newer "$bundle" -print -quit 2>/dev/null)" ]; then
  node "$repo/scripts/build-standins.mjs" || exit
fi
# The stand-ins trust only the cluster CAs they are handed (a request with `ca` trusts no other):
# extra CAs from the environment would only cost each run ~10 ms of CPU to load.
unset NODE_EXTRA_CA_CERTS
NODE_COMPILE_CACHE=${NODE_COMPILE_CACHE:-$repo/.cache/standin-compile-cache} exec node "$bundle" "$@"
