#!/usr/bin/env bash
# make images: the Debian base (mmdebstrap, only when absent), the project's wheels (built on the
# host), then the contiv-vswitch and contiv-ksr images (installed offline, no network in the build).
#   IMAGE_TAG   tag of the app images (default: the package version)
#   SUITE       Debian suite of the base (default bookworm: its python3 is 3.11, like the wheels)
#   PY          the host's python (builds the wheels)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PY="${PY:-python3}"
SUITE="${SUITE:-bookworm}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$root/deploy/podman/containers.conf}"
version="$(cd "$root" && "$PY" -c 'import configparser; c = configparser.ConfigParser(); c.read("setup.cfg"); print(c["metadata"]["version"])')"
IMAGE_TAG="${IMAGE_TAG:-$version}"
revision="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
base="localhost/contiv-base:$SUITE"

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (make deps installs it)" >&2; exit 2; }
done

step() { printf '== %s (%ss)\n' "$1" "$SECONDS"; }

if ! podman image exists "$base"; then
  step "base $base from Debian $SUITE (mmdebstrap)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # Only what the apps run: python3, iproute2 and nftables (the agent's dataplane tools).
  # The merged-usr hook instead of the usrmerge package, which would pull in perl (~50 MB).
  mmdebstrap --quiet --variant=minbase --include=python3,iproute2,nftables \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$tmp/base.tar"
  podman import --quiet --change 'CMD ["/bin/sh"]' "$tmp/base.tar" "$base" >/dev/null
fi

step "wheels of contiv-py $version and its dependencies"
ctx="$root/build/images"
rm -rf "$ctx"
mkdir -p "$ctx/wheels"
cp "$here/Containerfile" "$ctx/"
"$PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$ctx/wheels" \
  -c "$here/constraints.txt" "$root" pip

# contiv-etcd carries Debian's etcd (the host's etcd-server and etcd-client packages, which
# make deps installs; same suite as the base, so their libc matches).
mkdir -p "$ctx/etcd"
for bin in etcd etcdctl; do
  path="$(command -v "$bin" || true)"
  [ -n "$path" ] && dpkg -S "$(readlink -f "$path")" >/dev/null 2>&1 \
    || { echo "build.sh: $bin from Debian's etcd-server/etcd-client is missing (make deps installs it)" >&2; exit 2; }
  cp "$(readlink -f "$path")" "$ctx/etcd/$bin"
done
etcd_version="$(dpkg-query -W -f '${Version}' etcd-server)"

# contiv-cni (the static Go binary, `make cni-bin`) and the reference plugins that
# contiv-cni-install puts on nodes lacking them: loopback (containerd runs it for every pod) and
# portmap (chained for HostPort), from the host's Debian containernetworking-plugins (`make deps`
# installs it; the base image is only made when absent, so its --include list would not reach
# existing bases).
step "contiv-cni and the reference plugins"
cni_bin="$root/build/bin/contiv-cni"
[ -x "$cni_bin" ] || { echo "build.sh: $cni_bin is missing (make cni-bin builds it)" >&2; exit 2; }
mkdir -p "$ctx/cni/plugins"
cp "$cni_bin" "$ctx/cni/contiv-cni"
for plugin in loopback portmap; do
  [ -x "/usr/lib/cni/$plugin" ] || { echo "build.sh: /usr/lib/cni/$plugin is missing (Debian's containernetworking-plugins)" >&2; exit 2; }
  cp "/usr/lib/cni/$plugin" "$ctx/cni/plugins/"
done

for target in vswitch ksr etcd; do
  step "image localhost/contiv-$target:$IMAGE_TAG"
  podman build --quiet --network=none --format docker --target "$target" \
    --build-arg "BASE=$base" --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    --build-arg "ETCD_VERSION=$etcd_version" \
    -t "localhost/contiv-$target:$IMAGE_TAG" "$ctx" >/dev/null
done
podman image prune --force --filter label=io.contiv.stage=install >/dev/null
step "done"
podman images --filter reference='localhost/contiv-*' --format '{{.Repository}}:{{.Tag}} {{.Size}}'
