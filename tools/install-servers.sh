#!/usr/bin/env bash
# Installs, idempotently, every server binary the test suite runs for real:
# nginx, PostgreSQL 15, Redis 7, Prometheus + exporters (Debian 12) and a
# promtool that understands kubernetes_sd_configs (Debian 13's, unpacked into
# .cache/promtool), and Alertmanager + amtool 0.28.1 (Debian 13's, unpacked into
# .cache/alertmanager). Run as root on Debian; elsewhere it prints what to install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROMTOOL_DIR="$ROOT/.cache/promtool"
# Prometheus 2.53 from Debian 13, the version of the shipped image: Debian 12's 2.42 is built without kubernetes_sd.
PROMETHEUS_DIR="$ROOT/.cache/prometheus"
# Debian 13's exporters (postgres 0.17, redis 1.69, nginx 1.4): with Debian 12's they bracket the pinned images' versions;
# and pgbouncer_exporter 0.10.2 (prometheus-community), the shipped sidecar's version.
EXPORTERS13_DIR="$ROOT/.cache/exporters-debian13"
# patroni + python3-etcd + etcd-server: Patroni's etcd3 DCS on loopback (Patroni 3.0.2 offers only
# kubernetes and raft without python3-etcd); pgbouncer: the pooler tier (its exporter comes from
# Debian 13 below: Debian 12's Python exporter 1.7 cannot read PgBouncer 1.18's SHOW STATS);
# pgbackrest 2.45: WAL archiving, backups and restores (the version images/postgres pins);
# busybox: the shell the edge's cert-reload script runs in (the nginx image's); shellcheck
# checks that script; nghttp2-client: h2load, the edge benchmark's HTTP/1.1 and HTTP/2 client.
# Alertmanager 0.28.1 from Debian 13, the version of the pinned image (prom/alertmanager:v0.28.1):
# Debian 12's 0.25 has no webhook url_file, which reads a webhook's URL from its Secret.
ALERTMANAGER_DIR="$ROOT/.cache/alertmanager"
PACKAGES=(nginx postgresql-15 postgresql-contrib redis-server redis-tools prometheus
  prometheus-postgres-exporter prometheus-redis-exporter prometheus-nginx-exporter
  patroni python3-etcd etcd-server pgbouncer pgbackrest
  busybox shellcheck nghttp2-client
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
  [/usr/bin/patroni]=patroni
  [/usr/lib/python3/dist-packages/etcd/__init__.py]=python3-etcd
  [/usr/bin/etcd]=etcd-server
  [/usr/sbin/pgbouncer]=pgbouncer
  [/usr/bin/pgbackrest]=pgbackrest
  [/usr/bin/busybox]=busybox
  [/usr/bin/shellcheck]=shellcheck
  [/usr/bin/h2load]=nghttp2-client
)

missing=()
for bin in "${!NEEDED[@]}"; do
  # Programs must be executable; a library file (python3-etcd's __init__.py) need only exist.
  if [[ "$bin" == *.py ]]; then [[ -f "$bin" ]]; else [[ -x "$bin" ]]; fi || missing+=("${NEEDED[$bin]}")
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
  prometheus-redis-exporter prometheus-nginx-exporter patroni etcd pgbouncer; do
  service "$svc" stop >/dev/null 2>&1 || true
done

# promtool, prometheus 2.53, the exporters and alertmanager 0.28 from Debian 13 (trixie): Debian 12's
# 2.42 rejects kubernetes_sd_configs, its alertmanager 0.25 has no webhook url_file. Only what is missing is fetched.
declare -A TRIXIE=()
[[ -x "$PROMTOOL_DIR/usr/bin/promtool" ]] || TRIXIE[promtool]="$PROMTOOL_DIR"
[[ -x "$PROMETHEUS_DIR/usr/bin/prometheus" ]] || TRIXIE[prometheus]="$PROMETHEUS_DIR"
if [[ ! -x "$EXPORTERS13_DIR/usr/bin/prometheus-postgres-exporter" ||
  ! -x "$EXPORTERS13_DIR/usr/bin/prometheus-pgbouncer-exporter" ]]; then
  for e in postgres redis nginx pgbouncer; do TRIXIE[prometheus-$e-exporter]="$EXPORTERS13_DIR"; done
fi
[[ -x "$ALERTMANAGER_DIR/usr/bin/prometheus-alertmanager" && -x "$ALERTMANAGER_DIR/usr/bin/amtool" ]] ||
  TRIXIE[prometheus-alertmanager]="$ALERTMANAGER_DIR"
if ((${#TRIXIE[@]})); then
  if ! is_debian_root; then
    echo "install-servers: missing Debian 13's ${!TRIXIE[*]} under $ROOT/.cache." >&2
    echo "Run as root on Debian: bash tools/install-servers.sh (apt-get download ${!TRIXIE[*]} from trixie," \
      "unpacked with dpkg-deb -x into .cache/)" >&2
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
  echo "install-servers: fetching ${!TRIXIE[*]} from Debian 13" >&2
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" download "${!TRIXIE[@]}" >/dev/null)
  for pkg in "${!TRIXIE[@]}"; do
    mkdir -p "${TRIXIE[$pkg]}"
    dpkg-deb -x "$work/${pkg}"_[0-9]*.deb "${TRIXIE[$pkg]}"
  done
fi
# Debian's alertmanager reads its notification templates from the package's path (compiled in): put them
# where the package would have.
AM_TEMPLATES=/usr/share/prometheus/alertmanager
for t in default.tmpl email.tmpl; do
  [[ -f "$AM_TEMPLATES/$t" ]] && continue
  if ! is_debian_root; then
    echo "install-servers: missing $AM_TEMPLATES/$t; as root: install -D -m 0644 $ALERTMANAGER_DIR$AM_TEMPLATES/$t $AM_TEMPLATES/$t" >&2
    exit 1
  fi
  install -D -m 0644 "$ALERTMANAGER_DIR$AM_TEMPLATES/$t" "$AM_TEMPLATES/$t"
done
echo "install-servers: ok (nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///'), postgres $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), redis $(/usr/bin/redis-server --version | awk '{print $3}' | sed 's/v=//'), promtool $("$PROMTOOL_DIR/usr/bin/promtool" --version 2>&1 | head -1 | awk '{print $3}'), alertmanager $("$ALERTMANAGER_DIR/usr/bin/prometheus-alertmanager" --version 2>&1 | head -1 | awk '{print $3}'))" >&2
