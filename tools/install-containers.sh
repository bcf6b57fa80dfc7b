#!/usr/bin/env bash
# Installs, idempotently, what `npm run image:build` and the container tests use:
# podman, buildah and runc (Debian 12's crun refuses hybrid cgroups), mmdebstrap
# (a base image from Debian packages where no registry is reachable), uidmap,
# fuse-overlayfs and slirp4netns. Run as root on Debian; elsewhere it prints
# what to install.
set -euo pipefail

PACKAGES=(podman buildah runc mmdebstrap uidmap fuse-overlayfs slirp4netns ca-certificates)
declare -A NEEDED=(
  [/usr/bin/podman]=podman
  [/usr/bin/buildah]=buildah
  [/usr/sbin/runc]=runc
  [/usr/bin/mmdebstrap]=mmdebstrap
  [/usr/bin/newuidmap]=uidmap
  [/usr/bin/fuse-overlayfs]=fuse-overlayfs
)
missing=()
for bin in "${!NEEDED[@]}"; do
  [[ -x "$bin" ]] || missing+=("${NEEDED[$bin]}")
done
if ((${#missing[@]})); then
  if ! [[ -f /etc/debian_version && "$(id -u)" == 0 ]] || ! command -v apt-get >/dev/null; then
    echo "install-containers: missing ${missing[*]}." >&2
    echo "Install on Debian 12 as root: apt-get install -y ${PACKAGES[*]}" >&2
    exit 1
  fi
  echo "install-containers: installing ${missing[*]} with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Another apt run (e.g. a second CI step) may hold the lock: wait for it rather than fail.
  apt_opts=(-o DPkg::Lock::Timeout=300)
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
echo "install-containers: ok (podman $(podman --version | awk '{print $3}'), buildah $(buildah --version | awk '{print $3}'), runc $(runc --version | head -1 | awk '{print $3}'), mmdebstrap $(mmdebstrap --version | awk '{print $2}'))" >&2
