import * as core from '../core';
import { REDIS_USER_ROLES, REDIS_USERS, redisAclRules, redisPasswordKey } from './acl';

/** Eviction policies a cache may use (`maxmemory-policy`). */
export const MAXMEMORY_POLICIES = [
  'allkeys-lru',
  'allkeys-lfu',
  'volatile-lru',
  'volatile-lfu',
  'volatile-ttl',
  'noeviction',
] as const;

/** What the Redis files are rendered from (the tier's settings). */
export interface RedisConfig {
  /** Masters of the cluster (>= 3, as Redis Cluster requires for a majority). */
  readonly masters: number;
  readonly replicasPerMaster: number;
  /** maxmemory per node, in any size Redis accepts (`2gb`, `1GB`, `512mb`, `1000000`). */
  readonly maxmemory: string;
  readonly maxmemoryPolicy: (typeof MAXMEMORY_POLICIES)[number];
  readonly nodeTimeoutMs: number;
  /**
   * Commands the `app` ACL user may run (ACL syntax: `get`, `cluster|info`); must include every
   * command the API service sends. @default - exactly those (APP_COMMANDS, from service/src/cache/acl.ts)
   */
  readonly appCommands: readonly string[];
}

export const REDIS_FILES = {
  conf: 'redis.conf',
  start: 'redis-start.sh',
  clusterCreate: 'cluster-create.sh',
} as const;

export const REDIS_PORT = 6379;
/** The cluster bus listens on port + 10000 (Redis' default); the NetworkPolicy opens it. */
export const REDIS_BUS_PORT_OFFSET = 10000;
export const CLUSTER_SLOTS = 16384;

/** Total nodes of the cluster. */
export function redisNodeCount(r: Pick<RedisConfig, 'masters' | 'replicasPerMaster'>): number {
  return r.masters * (1 + r.replicasPerMaster);
}

/** redis.conf. The ACL users, port, bind address, announce address and data dir come from the start script. */
export function renderRedisConf(r: RedisConfig): string {
  return `# Rendered by constructs/config-files/redis.ts. Do not edit: change stacks/<env>.ts.
port ${REDIS_PORT}
bind * -::*
# Every client authenticates as an ACL user (the start script's include; \`default\` is off),
# so protected mode adds nothing.
protected-mode no
tcp-keepalive 60
timeout 0

cluster-enabled yes
# nodes.conf lives on the PVC next to the data: a node keeps its id across restarts.
cluster-config-file nodes.conf
cluster-node-timeout ${r.nodeTimeoutMs}
# Clients are redirected by hostname, which survives pod IP changes.
cluster-preferred-endpoint-type hostname
# Keep serving the shards that are healthy while one is failing over.
cluster-require-full-coverage no
cluster-allow-reads-when-down no
cluster-replica-validity-factor 10
cluster-migration-barrier 1

# dir (the PVC, /data) is passed by the start script: redis exits if it does not exist yet.
appendonly yes
appendfsync everysec
appenddirname appendonlydir
aof-use-rdb-preamble yes
save 900 1 300 100

maxmemory ${r.maxmemory}
maxmemory-policy ${r.maxmemoryPolicy}

# Replicas sync over the network without a temporary file, and without waiting for more replicas.
repl-diskless-sync yes
repl-diskless-sync-delay 0
repl-diskless-load on-empty-db
replica-read-only yes

loglevel notice
logfile ""
latency-tracking yes
slowlog-log-slower-than 10000
`;
}

/**
 * Shared by both scripts: with REDIS_TLS_DIR (a mounted Secret with cert-manager's keys), every
 * redis-cli speaks TLS and checks the server's certificate against its ca.crt.
 */
const TLS_CLI = `# redis-cli's TLS options (empty without REDIS_TLS_DIR); the path holds no spaces (a mount path).
tls_cli=""
if [ -n "\${REDIS_TLS_DIR:-}" ]; then tls_cli="--tls --cacert $REDIS_TLS_DIR/${core.TLS_SECRET_KEYS.ca}"; fi
`;

/** Shared by both scripts: resolve a hostname to an IPv4 address (literal IPs pass through). */
const RESOLVE = `# resolve NAME -> IPv4. REDIS_HOSTS_FILE ("name ip" lines) lets a test stand in for DNS.
resolve() {
  case "$1" in
    *[!0-9.]*) ;;
    *) echo "$1"; return 0 ;;
  esac
  if [ -n "\${REDIS_HOSTS_FILE:-}" ]; then
    awk -v n="$1" '$1 == n { print $2; exit }' "$REDIS_HOSTS_FILE"
  else
    getent ahostsv4 "$1" 2>/dev/null | awk '{ print $1; exit }'
  fi
}
`;

/**
 * Node entry point. Every node announces its stable hostname, which Redis 7 gossips and
 * stores in nodes.conf (`ip:port@bus,hostname`). Before starting, each peer's recorded IP
 * is replaced by what its hostname resolves to now, so after a full restart where every
 * pod got a new IP the nodes still find each other and keep their ids and slots.
 * The ACL users (constructs/redis/acl.ts) are written to an include on tmpfs, each with the
 * SHA-256 of every password file `<user>-password[-<suffix>]` in REDIS_USERS_DIR (the mounted
 * Secret); replicas authenticate to their master as `replication`.
 * While the node runs, a loop applies a changed Secret (a rotation) to the live users and
 * masterauth every REDIS_USERS_SYNC_SECONDS (@default 10): docs/redis-acl.md#rotation.
 * With REDIS_TLS_DIR (tls.crt, tls.key, ca.crt), REDIS_PORT speaks TLS only (`port 0`), and so do
 * the cluster bus and replication; clients authenticate by ACL password, not certificate. The
 * same loop loads renewed certificate files into the running server (CONFIG SET): docs/redis-acl.md#tls.
 * Inputs: REDIS_USERS_DIR, REDIS_HOSTNAME; optional REDIS_PORT, REDIS_DATA_DIR,
 * REDIS_BIND, REDIS_ANNOUNCE_IP, REDIS_CONFIG_DIR, REDIS_HOSTS_FILE, REDIS_USERS_SYNC_SECONDS,
 * REDIS_TLS_DIR.
 */
export function redisStartScript(appCommands: readonly string[]): string {
  const rules = redisAclRules(appCommands);
  const hashVar = (role: string) => `\${${role}_hashes}`;
  return `#!/bin/sh
# Rendered by constructs/redis/files.ts: Redis Cluster node entry point.
set -eu
: "\${REDIS_USERS_DIR:?REDIS_USERS_DIR must name the directory of the password files of the users (the Secret)}"
: "\${REDIS_HOSTNAME:?REDIS_HOSTNAME must be the stable DNS name of this node}"
REDIS_PORT="\${REDIS_PORT:-${REDIS_PORT}}"
REDIS_DATA_DIR="\${REDIS_DATA_DIR:-/data}"
REDIS_CONFIG_DIR="\${REDIS_CONFIG_DIR:-/etc/redis}"
TMPDIR="\${TMPDIR:-/tmp}"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
${RESOLVE}${TLS_CLI}
nodes="$REDIS_DATA_DIR/nodes.conf"
if [ -s "$nodes" ]; then
  # Fields: id addr flags ...; addr is ip:port@bus[,hostname]. Rewrite ip from hostname.
  : > "$nodes.new"
  set -f # no globbing while splitting lines into fields
  while IFS= read -r line; do
    set -- $line
    case "\${2:-}" in
      *,?*)
        addr=\${2%%,*}; host=\${2#*,}; ip=\${addr%%:*}; rest=\${addr#*:}
        new=$(resolve "$host" || true)
        if [ -n "$new" ] && [ "$new" != "$ip" ]; then
          log "peer $host moved $ip -> $new"
          line=$(printf '%s\\n' "$line" | awk -v a="$new:$rest,$host" '{ $2 = a; print }')
        fi ;;
    esac
    printf '%s\\n' "$line" >> "$nodes.new"
  done < "$nodes"
  set +f
  mv "$nodes.new" "$nodes"
fi
# The ACL users go through an include on tmpfs, not argv (visible in ps) nor the ConfigMap;
# passwords as SHA-256 only, except masterauth (the replica sends it).
umask 077
# hashes USER: " #<sha256>" for each password file USER-password[-suffix] (several during a rotation).
hashes() {
  out=""
  for f in "$REDIS_USERS_DIR/$1-password" "$REDIS_USERS_DIR/$1-password-"*; do
    [ -f "$f" ] || continue
    pw=$(cat "$f")
    [ -n "$pw" ] || continue
    out="$out #$(printf '%s' "$pw" | sha256sum | cut -d ' ' -f 1)"
  done
  [ -n "$out" ] || { log "no password for Redis user $1: $REDIS_USERS_DIR/$1-password is missing or empty"; return 1; }
  printf '%s' "$out"
}
${REDIS_USER_ROLES.map((role) => `${role}_hashes=$(hashes ${REDIS_USERS[role]})`).join('\n')}
replication_password=$(cat "$REDIS_USERS_DIR/${redisPasswordKey('replication')}")
{
  echo 'user default off resetpass resetkeys resetchannels -@all'
${REDIS_USER_ROLES.map((role) => `  echo "user ${REDIS_USERS[role]} on${hashVar(role)} ${rules[role]}"`).join('\n')}
  echo 'masteruser ${REDIS_USERS.replication}'
  printf 'masterauth "%s"\\n' "$replication_password"
} > "$TMPDIR/redis-auth.conf"
# Rotation: the kubelet rewrites the mounted Secret when it changes. Every
# REDIS_USERS_SYNC_SECONDS this loop compares the password files with what it last applied
# and, on a change, gives each user exactly the passwords the files hold now (ACL SETUSER
# resetpass #<sha256>...: one command, so a user is never without a password; connections
# already authenticated stay) and sets masterauth. It logs in as admin with any admin
# password the files hold (one of them is still valid while the admin's own is rotated).
# $$ is redis-server's pid once exec'd below; the loop ends with it.
pid=$$
# Where redis-server listens for this loop: loopback, or the first address of REDIS_BIND.
local_host=\${REDIS_BIND:-127.0.0.1}
local_host=\${local_host%% *}
(
  # snapshot FILES...: name and checksum of each (a Secret volume's files are symlinks: followed).
  snapshot() {
    for f in "$@"; do
      if [ -f "$f" ]; then printf '%s %s\\n' "\${f##*/}" "$(cksum < "$f")"; fi
    done
  }
  tls_files() {
    if [ -n "\${REDIS_TLS_DIR:-}" ]; then
      printf '%s\\n' "$REDIS_TLS_DIR/${core.TLS_SECRET_KEYS.cert}" "$REDIS_TLS_DIR/${core.TLS_SECRET_KEYS.key}" "$REDIS_TLS_DIR/${core.TLS_SECRET_KEYS.ca}"
    fi
  }
  # admin_cli ARGS...: redis-cli as admin; with -x first, the last argument is read from stdin
  # (a password: never in argv, where ps would show it).
  admin_cli() {
    stdin=""
    if [ "$1" = -x ]; then stdin=$(cat); fi
    for f in "$REDIS_USERS_DIR/${redisPasswordKey('admin')}" "$REDIS_USERS_DIR/${redisPasswordKey('admin')}-"*; do
      [ -f "$f" ] || continue
      # shellcheck disable=SC2086 # $tls_cli: empty or several words
      out=$(printf '%s' "$stdin" | REDISCLI_AUTH=$(cat "$f") redis-cli $tls_cli -h "$local_host" -p "$REDIS_PORT" --user ${REDIS_USERS.admin} --no-auth-warning "$@" 2>&1) || continue
      case "$out" in *WRONGPASS*|*NOAUTH*|*ERR*|*NOPERM*) continue ;; esac
      return 0
    done
    log "users sync: no admin password in $REDIS_USERS_DIR was accepted for: $*"
    return 1
  }
  apply() {
${REDIS_USER_ROLES.map(
  (role) => `    h=$(hashes ${REDIS_USERS[role]}) || return 1
    # shellcheck disable=SC2086
    admin_cli acl setuser ${REDIS_USERS[role]} resetpass $h >/dev/null || return 1`,
).join('\n')}
    printf '%s' "$(cat "$REDIS_USERS_DIR/${redisPasswordKey('replication')}")" | admin_cli -x config set masterauth >/dev/null
  }
  # A renewed certificate (same paths, new bytes): CONFIG SET of the tls-*-file settings makes the
  # server load them again; new connections get the new certificate, open ones keep theirs.
  reload_tls() {
    # shellcheck disable=SC2046
    set -- $(tls_files)
    admin_cli config set tls-cert-file "$1" tls-key-file "$2" tls-ca-cert-file "$3" >/dev/null
  }
  last=$(snapshot "$REDIS_USERS_DIR"/*-password*)
  # shellcheck disable=SC2046
  last_tls=$(snapshot $(tls_files))
  while sleep "\${REDIS_USERS_SYNC_SECONDS:-10}"; do
    kill -0 "$pid" 2>/dev/null || exit 0
    now=$(snapshot "$REDIS_USERS_DIR"/*-password*)
    if [ "$now" != "$last" ] && apply; then
      log "users sync: passwords applied from $REDIS_USERS_DIR ($(printf '%s\\n' "$now" | awk 'NF { print $1 }' | tr '\\n' ' '))"
      last=$now
    fi
    # shellcheck disable=SC2046
    now_tls=$(snapshot $(tls_files))
    if [ "$now_tls" != "$last_tls" ] && reload_tls; then
      log "tls sync: certificate files loaded again from $REDIS_TLS_DIR"
      last_tls=$now_tls
    fi
  done
) &
set -- "$REDIS_CONFIG_DIR/${REDIS_FILES.conf}" --include "$TMPDIR/redis-auth.conf" \\
  --port "$REDIS_PORT" --dir "$REDIS_DATA_DIR" --cluster-announce-hostname "$REDIS_HOSTNAME"
if [ -n "\${REDIS_BIND:-}" ]; then set -- "$@" --bind "$REDIS_BIND"; fi
if [ -n "\${REDIS_ANNOUNCE_IP:-}" ]; then set -- "$@" --cluster-announce-ip "$REDIS_ANNOUNCE_IP"; fi
if [ -n "\${REDIS_TLS_DIR:-}" ]; then
  # TLS only, on the same port; the bus (port + 10000) and replication too. Clients prove who
  # they are with their ACL password: no client certificate is asked for.
  set -- "$@" --port 0 --tls-port "$REDIS_PORT" --tls-cluster yes --tls-replication yes --tls-auth-clients no \\
    --tls-cert-file "$REDIS_TLS_DIR/${core.TLS_SECRET_KEYS.cert}" --tls-key-file "$REDIS_TLS_DIR/${core.TLS_SECRET_KEYS.key}" \\
    --tls-ca-cert-file "$REDIS_TLS_DIR/${core.TLS_SECRET_KEYS.ca}"
fi
exec redis-server "$@"
`;
}

/**
 * Cluster-create script (the Job). Waits for every node; creates the cluster with
 * REDIS_REPLICAS_PER_MASTER replicas only when no node has slots yet; then waits until
 * all ${CLUSTER_SLOTS} slots are served, cluster_state is ok and every master has its
 * replicas. Exit 0 on an existing healthy cluster, so it is safe on every apply.
 * Runs as the `admin` ACL user (REDIS_USERS.admin); over TLS when REDIS_TLS_DIR holds the CA.
 * Inputs: REDIS_NODES (space-separated host:port), REDIS_ADMIN_PASSWORD, REDIS_REPLICAS_PER_MASTER;
 * optional REDIS_TLS_DIR, REDIS_WAIT_SECONDS.
 */
export function clusterCreateScript(r: RedisConfig): string {
  return `#!/bin/sh
# Rendered by constructs/redis/files.ts: idempotent Redis Cluster creation and check.
set -eu
: "\${REDIS_NODES:?REDIS_NODES must list every node as host:port}"
: "\${REDIS_ADMIN_PASSWORD:?REDIS_ADMIN_PASSWORD must hold the password of the ${REDIS_USERS.admin} user}"
REPLICAS="\${REDIS_REPLICAS_PER_MASTER:-${r.replicasPerMaster}}"
WAIT="\${REDIS_WAIT_SECONDS:-600}"
export REDISCLI_AUTH="$REDIS_ADMIN_PASSWORD"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
${RESOLVE}${TLS_CLI}
# shellcheck disable=SC2086 # $tls_cli: empty or several words
cli() { hp=$1; shift; redis-cli $tls_cli -h "\${hp%:*}" -p "\${hp##*:}" --user ${REDIS_USERS.admin} --no-auth-warning "$@"; }
info_field() { cli "$1" cluster info | tr -d '\\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }

# 1. Wait for every node to resolve and answer; from here on use addresses (CLUSTER MEET needs IPs).
addrs=""
for hp in $REDIS_NODES; do
  i=0
  while :; do
    ip=$(resolve "\${hp%:*}" || true)
    if [ -n "$ip" ] && [ "$(cli "$ip:\${hp##*:}" ping 2>/dev/null || true)" = PONG ]; then break; fi
    i=$((i + 1)); [ "$i" -lt "$WAIT" ] || { log "node $hp did not resolve and answer PING in \${WAIT}s"; exit 1; }
    sleep 1
  done
  addrs="$addrs $ip:\${hp##*:}"
done
set -- $addrs
first=$1
count=$#

# 2. Create only if no node serves any slot yet; a half-assigned cluster needs a human.
assigned=0
for hp in $addrs; do
  n=$(info_field "$hp" cluster_slots_assigned)
  assigned=$((assigned + \${n:-0}))
done
if [ "$assigned" -eq 0 ]; then
  log "no slots assigned on any node: creating the cluster ($count nodes, $REPLICAS replica(s) per master)"
  # shellcheck disable=SC2086
  redis-cli $tls_cli --user ${REDIS_USERS.admin} --no-auth-warning --cluster create $addrs --cluster-replicas "$REPLICAS" --cluster-yes
else
  log "cluster exists ($assigned slot assignments seen): not creating"
  # A node that lost its volume comes back with a new id, knowing only itself: join it as a
  # replica (redis-cli picks a master with the fewest replicas), then forget its old id.
  seed=""
  for hp in $addrs; do
    [ "$(info_field "$hp" cluster_known_nodes)" -gt 1 ] && { seed=$hp; break; }
  done
  added=0
  for hp in $addrs; do
    if [ -n "$seed" ] && [ "$(info_field "$hp" cluster_known_nodes)" = 1 ]; then
      log "node $hp knows no other node (empty nodes.conf): adding it as a replica"
      # shellcheck disable=SC2086
      redis-cli $tls_cli --user ${REDIS_USERS.admin} --no-auth-warning --cluster add-node "$hp" "$seed" --cluster-slave
      added=$((added + 1))
    fi
  done
  # Only the ids those nodes replaced (their address now answers with another id: noaddr,
  # or failed for good), and only if they serve no slots.
  if [ "$added" -gt 0 ]; then
    sleep 2
    gone=$(cli "$seed" cluster nodes | tr -d '\\r' | awk '($3 ~ /noaddr/ || ($3 ~ /fail/ && $3 !~ /fail\\?/)) && NF <= 8 { print $1 }')
    for id in $gone; do
      log "forgetting failed node $id"
      for hp in $addrs; do cli "$hp" cluster forget "$id" >/dev/null 2>&1 || true; done
    done
  fi
fi

# 3. Verify: every node sees state ok and ${CLUSTER_SLOTS} slots; masters x (1 + replicas) nodes.
masters=$((count / (REPLICAS + 1)))
i=0
while :; do
  ok=1
  for hp in $addrs; do
    [ "$(info_field "$hp" cluster_state)" = ok ] || ok=0
    [ "$(info_field "$hp" cluster_slots_ok)" = ${CLUSTER_SLOTS} ] || ok=0
  done
  nodes_out=$(cli "$first" cluster nodes | tr -d '\\r')
  m=$(printf '%s\\n' "$nodes_out" | awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8 { n++ } END { print n + 0 }')
  s=$(printf '%s\\n' "$nodes_out" | awk '$3 ~ /slave/ && $3 !~ /fail/ { n++ } END { print n + 0 }')
  [ "$m" -eq "$masters" ] && [ "$s" -eq $((count - masters)) ] || ok=0
  if [ "$ok" -eq 1 ]; then
    log "cluster ok: ${CLUSTER_SLOTS} slots, $m masters, $s replicas"
    exit 0
  fi
  i=$((i + 1)); [ "$i" -lt "$WAIT" ] || { log "cluster not ok after \${WAIT}s: $m masters, $s replicas"; cli "$first" cluster info >&2; exit 1; }
  sleep 1
done
`;
}

/** A size as redis.conf takes it: bytes, or k/kb/m/mb/g/gb (k = 1000, kb = 1024), units case-insensitive. */
export const REDIS_SIZE = /^(\d+)(k|kb|m|mb|g|gb)?$/i;
const REDIS_UNIT: Record<string, number> = { '': 1, k: 1e3, kb: 2 ** 10, m: 1e6, mb: 2 ** 20, g: 1e9, gb: 2 ** 30 };

/** Bytes of a Redis size (`1GB` = `1gb` = 1073741824). NaN if malformed. */
export function parseRedisSize(size: string): number {
  const m = REDIS_SIZE.exec(size);
  return m ? Number(m[1]) * REDIS_UNIT[(m[2] ?? '').toLowerCase()] : NaN;
}

/**
 * Headroom a node needs above maxmemory (which counts the dataset only). A fork
 * (AOF rewrite, RDB for a replica's full sync) copies every page written while
 * it runs: a quarter of the dataset is budgeted (write-heavy caches need more).
 * Replication buffers sit outside maxmemory too: the backlog (1mb by default)
 * and a syncing replica's output buffer (up to its 64mb soft limit).
 */
export const REDIS_FORK_COW_SHARE = 0.25;
export const REDIS_REPLICATION_BUFFER_BYTES = (1 + 64) * 2 ** 20;

/**
 * Why `maxmemory` does not fit under the container's memory limit with that
 * headroom, with the largest value that does; undefined when it fits.
 */
export function redisMemoryProblem(maxmemory: string, memoryLimit: string): string | undefined {
  if (!REDIS_SIZE.test(maxmemory) || parseRedisSize(maxmemory) <= 0) {
    return "must be a positive Redis size such as '256mb', '2gb' or '1GB' (k, kb, m, mb, g, gb; any case)";
  }
  const limit = core.parseQuantity(memoryLimit);
  const needed = parseRedisSize(maxmemory) * (1 + REDIS_FORK_COW_SHARE) + REDIS_REPLICATION_BUFFER_BYTES;
  if (!(needed > limit)) return undefined;
  const fitsMb = Math.floor((limit - REDIS_REPLICATION_BUFFER_BYTES) / (1 + REDIS_FORK_COW_SHARE) / 2 ** 20);
  const mb = (bytes: number) => `${Math.ceil(bytes / 2 ** 20)}mb`;
  return (
    `does not fit under the container's memory limit (${memoryLimit}): a node needs maxmemory + ${REDIS_FORK_COW_SHARE * 100} % ` +
    `for fork copy-on-write + ${mb(REDIS_REPLICATION_BUFFER_BYTES)} of replication buffers = ${mb(needed)}; ` +
    (fitsMb > 0 ? `set maxmemory to at most ${fitsMb}mb or raise the limit` : 'raise the memory limit')
  );
}

/** Every file of the `redis-config` ConfigMap, keyed by file name. */
export function redisConfigFiles(r: RedisConfig): Record<string, string> {
  return {
    [REDIS_FILES.conf]: renderRedisConf(r),
    [REDIS_FILES.start]: redisStartScript(r.appCommands),
    [REDIS_FILES.clusterCreate]: clusterCreateScript(r),
  };
}
