#!/usr/bin/env bash
# Installs, idempotently, every server binary the test suite runs for real:
# nginx, PostgreSQL 15, Redis 7, Prometheus + exporters (Debian 12) and a
# promtool that understands kubernetes_sd_configs (Debian 13's, unpacked into
# .cache/promtool). Run as root on Debian; elsewhere it prints what to install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROMTOOL_DIR="$ROOT/.cache/promtool"
# Prometheus 2.53 from Debian 13, the version of the shipped image: Debian 12's 2.42 is built without kubernetes_sd.
PROMETHEUS_DIR="$ROOT/.cache/prometheus"
# Debian 13's exporters (postgres 0.17, redis 1.69, nginx 1.4): with Debian 12's they bracket the pinned images' versions.
EXPORTERS13_DIR="$ROOT/.cache/exporters-debian13"
PACKAGES=(nginx postgresql-15 postgresql-contrib redis-server redis-tools prometheus
  prometheus-postgres-exporter prometheus-redis-exporter prometheus-nginx-exporter
  curl ca-certificates procps)
# Commands that must exist afterwards, with the package that brings each.
declare -A NEEDED=(
  [/usr/sbin/nginx]=nginx
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
  [/usr/bin/redis-server]=redis-server
  [/usr/bin/redis-cli]=redis-tools
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/prometheus-postgres-exporter]=prometheus-postgres-exporter
  [/usr/bin/prometheus-redis-exporter]=prometheus-redis-exporter
  [/usr/bin/prometheus-nginx-exporter]=prometheus-nginx-exporter
  [/usr/bin/curl]=curl
)

missing=()
for bin in "${!NEEDED[@]}"; do
  [[ -x "$bin" ]] || missing+=("${NEEDED[$bin]}")
done

is_debian_root() { [[ -f /etc/debian_version && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; }

if ((${#missing[@]})); then
  if ! is_debian_root; then
    echo "install-servers: missing ${missing[*]}." >&2
    echo "Install on Debian 12 as root: apt-get install -y ${PACKAGES[*]}" >&2
    exit 1
  fi
  echo "install-servers: installing ${missing[*]} with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends keeps the set small; policy-rc.d stops the
  # packages' services from starting system-wide: our tests start their own.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
# Debian's packages start daemons on the default ports when the package is
# installed outside our policy-rc.d guard (e.g. by hand): stop them so they
# never answer for a test server.
for svc in nginx redis-server postgresql prometheus prometheus-postgres-exporter \
  prometheus-redis-exporter prometheus-nginx-exporter; do
  service "$svc" stop >/dev/null 2>&1 || true
done

# promtool and prometheus 2.53 from Debian 13 (trixie): Debian 12's 2.42 rejects kubernetes_sd_configs.
if [[ ! -x "$PROMTOOL_DIR/usr/bin/promtool" || ! -x "$PROMETHEUS_DIR/usr/bin/prometheus" ||
  ! -x "$EXPORTERS13_DIR/usr/bin/prometheus-postgres-exporter" ]]; then
  if ! is_debian_root; then
    echo "install-servers: missing Debian 13's promtool, prometheus or exporters under $ROOT/.cache." >&2
    echo "Run as root on Debian: bash tools/install-servers.sh (apt-get download promtool prometheus" \
      "prometheus-{postgres,redis,nginx}-exporter from trixie, unpacked with dpkg-deb -x into .cache/)" >&2
    exit 1
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  cat >"$work/trixie.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_opts=(-o "APT::Sandbox::User=root" -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/parts"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Dir::State::status=/var/lib/dpkg/status")
  mkdir -p "$work/parts" && cp "$work/trixie.sources" "$work/parts/"
  echo "install-servers: fetching promtool, prometheus and the exporters from Debian 13" >&2
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" download promtool prometheus prometheus-postgres-exporter \
    prometheus-redis-exporter prometheus-nginx-exporter >/dev/null)
  mkdir -p "$PROMTOOL_DIR" "$PROMETHEUS_DIR" "$EXPORTERS13_DIR"
  dpkg-deb -x "$work"/promtool_*.deb "$PROMTOOL_DIR"
  dpkg-deb -x "$work"/prometheus_[0-9]*.deb "$PROMETHEUS_DIR"
  for deb in "$work"/prometheus-*-exporter_*.deb; do dpkg-deb -x "$deb" "$EXPORTERS13_DIR"; done
fi
echo "install-servers: ok (nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///'), postgres $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), redis $(/usr/bin/redis-server --version | awk '{print $3}' | sed 's/v=//'), promtool $("$PROMTOOL_DIR/usr/bin/promtool" --version 2>&1 | head -1 | awk '{print $3}'))" >&2
