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
    # shellcheck disable=SC2086 # split the line into its fields
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
 * Cluster reconcile script (the create Job): brings the cluster to the topology REDIS_NODES
 * lists (StatefulSet ordinal order) with REDIS_MASTERS masters, through the same idempotent
 * steps whether the cluster is new, grown or shrunk; safe to re-run at any point.
 * 1. Waits for every listed node. 2. Creates the cluster when no node serves a slot yet.
 * 3. Refuses a scale-in whose data (`used_memory` of every master) does not fit the remaining
 *    masters' `maxmemory`, before changing anything (exit 3). 4. Joins nodes that know only
 *    themselves (new, or back with an empty volume) as empty masters. 5. Chooses the masters:
 *    those serving slots, lowest ordinal first, then empty ones; a kept replica of a leaving
 *    master is failed over when too few are left. 6. Replicas to masters with too few.
 *    7. Rebalances the slots evenly over the chosen masters (`--cluster-use-empty-masters`;
 *    weight 0 for every other master, so a leaving one is emptied first). 8. Removes the nodes
 *    REDIS_NODES no longer lists (`--cluster del-node`: replicas first). 9. Replicas again.
 * 10. Waits until every node sees all ${CLUSTER_SLOTS} slots ok, knows exactly the listed nodes,
 *    each master has its replicas and every replica is in sync.
 * Runs as the `admin` ACL user (REDIS_USERS.admin); over TLS when REDIS_TLS_DIR holds the CA.
 * Inputs: REDIS_NODES (space-separated host:port), REDIS_ADMIN_PASSWORD, REDIS_REPLICAS_PER_MASTER;
 * optional REDIS_MASTERS (@default nodes / (1 + replicas)), REDIS_TLS_DIR, REDIS_WAIT_SECONDS,
 * REDIS_MIGRATE_PIPELINE (keys per MIGRATE while moving slots, @default 100).
 */
export function clusterReconcileScript(r: RedisConfig): string {
  const admin = REDIS_USERS.admin;
  return `#!/bin/sh
# Rendered by constructs/redis/files.ts: idempotent Redis Cluster reconcile (create, scale out, scale in).
set -eu
: "\${REDIS_NODES:?REDIS_NODES must list every node of the target topology as host:port, in ordinal order}"
: "\${REDIS_ADMIN_PASSWORD:?REDIS_ADMIN_PASSWORD must hold the password of the ${admin} user}"
REPLICAS="\${REDIS_REPLICAS_PER_MASTER:-${r.replicasPerMaster}}"
WAIT="\${REDIS_WAIT_SECONDS:-600}"
PIPELINE="\${REDIS_MIGRATE_PIPELINE:-100}"
export REDISCLI_AUTH="$REDIS_ADMIN_PASSWORD"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
${RESOLVE}${TLS_CLI}
# shellcheck disable=SC2086 # $tls_cli: empty or several words
cli() { hp=$1; shift; redis-cli $tls_cli -h "\${hp%:*}" -p "\${hp##*:}" --user ${admin} --no-auth-warning "$@"; }
# shellcheck disable=SC2086
cluster_cli() { redis-cli $tls_cli --user ${admin} --no-auth-warning --cluster "$@"; }
# field KEY: the value of KEY in "key:value" lines on stdin (INFO, CLUSTER INFO).
field() { tr -d '\\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }
info_field() { cli "$1" cluster info | field "$2"; }
# wait_until WHAT CMD...: runs CMD every second until it succeeds, for at most WAIT seconds.
wait_until() {
  what=$1; shift
  n=0
  until "$@"; do
    n=$((n + 1)); [ "$n" -lt "$WAIT" ] || { log "gave up after \${WAIT}s waiting for $what"; return 1; }
    sleep 1
  done
}

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
# shellcheck disable=SC2086 # split into one address per word
set -- $addrs
count=$#
MASTERS="\${REDIS_MASTERS:-$((count / (REPLICAS + 1)))}"
if [ $((MASTERS * (REPLICAS + 1))) -ne "$count" ]; then
  log "REDIS_NODES lists $count nodes, not REDIS_MASTERS x (1 + REDIS_REPLICAS_PER_MASTER) = $MASTERS x (1 + $REPLICAS)"
  exit 1
fi

# 2. Create only if no node serves any slot yet.
assigned=0
for hp in $addrs; do
  n=$(info_field "$hp" cluster_slots_assigned)
  assigned=$((assigned + \${n:-0}))
done
if [ "$assigned" -eq 0 ]; then
  log "no slots assigned on any node: creating the cluster ($count nodes, $REPLICAS replica(s) per master)"
  # shellcheck disable=SC2086
  cluster_cli create $addrs --cluster-replicas "$REPLICAS" --cluster-yes
else
  log "cluster exists ($assigned slot assignments seen): reconciling it to $MASTERS masters x (1 + $REPLICAS)"
fi

# The node every cluster-wide command starts from: a listed node that is part of the cluster.
seed=""
for hp in $addrs; do
  if [ "$(info_field "$hp" cluster_known_nodes)" -gt 1 ]; then seed=$hp; break; fi
done
[ -n "$seed" ] || { log "no node of REDIS_NODES knows another node: no cluster to reconcile"; exit 1; }

# table: one line per node the seed knows: "id ip:port role master-id slots ordinal"; role is
# master, slave or gone (failed, or without an address); ordinal is the node's index in
# REDIS_NODES, -1 for a node the target topology no longer has.
table() {
  cli "$seed" cluster nodes | tr -d '\\r' | awk -v targets="$addrs" '
    BEGIN { n = split(targets, t, " "); for (i = 1; i <= n; i++) ord[t[i]] = i - 1 }
    $3 ~ /handshake/ { next }
    {
      addr = $2; sub(/@.*/, "", addr)
      role = ($3 ~ /master/) ? "master" : "slave"
      if ($3 ~ /noaddr/ || ($3 ~ /fail/ && $3 !~ /fail\\?/)) role = "gone"
      slots = 0
      for (i = 9; i <= NF; i++) {
        if ($i ~ /^\\[/) continue
        if (split($i, r, "-") == 2) slots += r[2] - r[1] + 1; else slots++
      }
      print $1, addr, role, $4, slots, ((addr in ord) ? ord[addr] : -1)
    }'
}
# desired: the ids of the REDIS_MASTERS masters of the target: listed masters serving slots,
# lowest ordinal first, then listed empty masters.
desired() {
  table | awk '$6 >= 0 && $3 == "master" { print ($5 > 0 ? 0 : 1), $6, $1 }' | sort -k1,1n -k2,2n |
    head -n "$MASTERS" | awk '{ print $3 }' | tr '\\n' ' '
}
# shellcheck disable=SC2086 # counting words
words() { set -f; set -- $1; set +f; echo $#; }

# 3. A scale-in must fit: the data of every master into the maxmemory of the masters that remain.
tab=$(table)
serving=$(printf '%s\\n' "$tab" | awk '$3 == "master" && $5 > 0 { n++ } END { print n + 0 }')
if [ "$MASTERS" -lt "$serving" ]; then
  used=0
  for hp in $(printf '%s\\n' "$tab" | awk '$3 == "master" && $5 > 0 { print $2 }'); do
    u=$(cli "$hp" info memory | field used_memory)
    used=$((used + u))
  done
  # The smallest maxmemory of the nodes that stay (0 is unlimited).
  max=0
  for hp in $addrs; do
    m=$(cli "$hp" info memory | field maxmemory)
    if [ "$m" -gt 0 ] && { [ "$max" -eq 0 ] || [ "$m" -lt "$max" ]; }; then max=$m; fi
  done
  if [ "$max" -gt 0 ] && [ "$used" -gt $((max * MASTERS)) ]; then
    log "refusing to scale in from $serving to $MASTERS masters: the $serving masters use $used bytes (used_memory), more than the $MASTERS remaining masters hold ($MASTERS x maxmemory $max = $((max * MASTERS)) bytes); raise maxmemory, keep more masters or delete data first. Nothing was changed."
    exit 3
  fi
  log "scale-in from $serving to $MASTERS masters fits: $used bytes used, $MASTERS x maxmemory $max bytes (0: unlimited)"
fi

# cluster_agrees: redis-cli --cluster check passes (every slot covered, none open, all nodes agree).
# A slot left open by an interrupted migration is closed with --cluster fix.
cluster_agrees() {
  out=$(cluster_cli check "$seed" 2>&1) && return 0
  case "$out" in
    *"migrating state"* | *"importing state"* | *"slots are open"*)
      log "slots left open by an interrupted migration: redis-cli --cluster fix"
      cluster_cli fix "$seed" --cluster-yes >&2 || true ;;
  esac
  return 1
}

# 4. Nodes that know only themselves (new in a scale-out, or back with an empty volume) join as
# empty masters; step 6 makes them replicas where the target needs replicas.
# add_node ADDR: add-node, retried: it refuses (changing nothing) while the nodes disagree for a
# moment after the previous one; done once the node knows others.
add_node() {
  [ "$(info_field "$1" cluster_known_nodes)" = 1 ] || return 0
  cluster_agrees && cluster_cli add-node "$1" "$seed"
}
added=0
for hp in $addrs; do
  if [ "$(info_field "$hp" cluster_known_nodes)" = 1 ]; then
    log "node $hp knows no other node: adding it to the cluster"
    wait_until "add-node $hp" add_node "$hp"
    added=$((added + 1))
  fi
done
# forget ID: every listed node forgets a node (a failed id whose address another id took).
forget() { for hp in $addrs; do cli "$hp" cluster forget "$1" >/dev/null 2>&1 || true; done; }
if [ "$added" -gt 0 ]; then
  sleep 2
  # Only the ids those nodes replaced (gone for good), and only if they serve no slots.
  for id in $(table | awk '$3 == "gone" && $5 == 0 { print $1 }'); do
    log "forgetting failed node $id"
    forget "$id"
  done
fi
wait_until "redis-cli --cluster check to pass" cluster_agrees

# every_node_known: every listed node knows as many nodes as the seed (gossip after add-node:
# a slot cannot be given to a node its owner does not know yet) and sees the cluster ok.
# A node that joined also waits a moment before it reports cluster_state:ok, and refuses the
# keys of a slot migration (CLUSTERDOWN) until then.
every_node_known() {
  n=$(table | wc -l)
  for hp in $addrs; do
    [ "$(info_field "$hp" cluster_known_nodes)" -ge "$n" ] && [ "$(info_field "$hp" cluster_state)" = ok ] || return 1
  done
}
wait_until "every node to know the others" every_node_known

# 5. Too few masters among the listed nodes: a listed replica of a leaving master takes over
# its slots (CLUSTER FAILOVER: the data is there already, nothing moves).
is_master() { [ "$(table | awk -v id="$1" '$1 == id { print $3 }')" = master ]; }
# failover_to ID HOST:PORT: Redis drops a manual failover that does not complete within 5 s (a busy
# master, a slow replica) without a word, so ask again every 10 s until the node is a master, for at
# most WAIT seconds.
failover_to() {
  n=0
  until is_master "$1"; do
    if [ $((n % 10)) -eq 0 ]; then
      [ "$n" -eq 0 ] || log "$2 is not a master yet: asking for the failover again"
      cli "$2" cluster failover >/dev/null || :
    fi
    n=$((n + 1)); [ "$n" -lt "$WAIT" ] || { log "gave up after \${WAIT}s waiting for $2 to become a master"; return 1; }
    sleep 1
  done
}
while [ "$(words "$(desired)")" -lt "$MASTERS" ]; do
  promote=$(table | awk '
    { line[NR] = $0; if ($6 < 0 && $3 == "master" && $5 > 0) leaving[$1] = 1 }
    END { for (i = 1; i <= NR; i++) { split(line[i], f, " "); if (f[6] >= 0 && f[3] == "slave" && (f[4] in leaving)) { print f[1], f[2]; exit } } }')
  if [ -z "$promote" ]; then
    log "cannot choose $MASTERS masters among the listed nodes: $(desired) serve or may serve slots, and no listed replica of a leaving master is left to promote; change masters and replicasPerMaster in separate applies"
    exit 1
  fi
  # shellcheck disable=SC2086
  set -- $promote
  log "failing over to listed replica $2 ($1), whose master leaves the cluster"
  failover_to "$1" "$2"
done

# 6 and 9. Every listed node that is not a chosen master replicates the chosen master with the
# fewest replicas, until each has REPLICAS (CLUSTER REPLICATE; a master must be empty to move).
replicates() { [ "$(table | awk -v id="$1" '$1 == id { print $3, $4 }')" = "slave $2" ]; }
assign_replicas() {
  while :; do
    move=$(table | awk -v want="$(desired)" -v per="$REPLICAS" '
      BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) { d[w[i]] = 1; c[w[i]] = 0 } }
      { line[NR] = $0; if ($3 == "slave" && ($4 in d)) c[$4]++ }
      END {
        best = ""
        for (i = 1; i <= n; i++) if (best == "" || c[w[i]] < c[best]) best = w[i]
        if (best == "" || c[best] >= per) exit
        for (i = 1; i <= NR; i++) {
          split(line[i], f, " ")
          if (f[6] < 0 || (f[1] in d) || f[5] > 0 || f[3] == "gone") continue
          if (f[3] == "master" || !(f[4] in d) || c[f[4]] > per) { print f[1], f[2], best; exit }
        }
      }')
    [ -n "$move" ] || return 0
    # shellcheck disable=SC2086
    set -- $move
    log "node $2 ($1) becomes a replica of $3"
    cli "$2" cluster replicate "$3" >/dev/null
    wait_until "$2 to replicate $3" replicates "$1" "$3"
  done
}
assign_replicas

# 7. Slots: evenly over the chosen masters; every other master gets weight 0, so rebalance moves
# all of its slots away (a leaving master, or one that is to become a replica).
want=" $(desired)"
set --
for id in $(table | awk '$3 == "master" { print $1 }'); do
  case "$want " in *" $id "*) ;; *) set -- "$@" "$id=0" ;; esac
done
if [ $# -gt 0 ]; then set -- --cluster-weight "$@"; fi
wait_until "every node to know the others" every_node_known
log "rebalancing ${CLUSTER_SLOTS} slots over masters$want"
cluster_cli rebalance "$seed" --cluster-use-empty-masters --cluster-pipeline "$PIPELINE" "$@"
wait_until "redis-cli --cluster check to pass" cluster_agrees

# remove_node ID: del-node, or done already (the seed no longer knows the id).
remove_node() {
  [ -n "$(table | awk -v id="$1" '$1 == id')" ] || return 0
  cluster_cli del-node "$seed" "$1"
}
replies_ok() { hp=$1; shift; [ "$(cli "$hp" "$@" 2>&1)" = OK ]; }

# 8. Nodes no longer listed leave: replicas first, then the masters (empty after step 7).
# del-node also re-points their replicas and resets the node; a node already gone is forgotten.
for line in $(table | awk '$6 < 0 { print ($3 == "master" ? 1 : 0) ":" $1 ":" $3 ":" $5 ":" $2 }' | sort); do
  id=$(echo "$line" | cut -d: -f2); role=$(echo "$line" | cut -d: -f3); slots=$(echo "$line" | cut -d: -f4)
  addr=$(echo "$line" | cut -d: -f5-)
  if [ "$slots" -gt 0 ]; then log "node $id still serves $slots slots: not removing it"; exit 1; fi
  if [ "$role" = gone ]; then
    log "forgetting node $id (no longer listed, and unreachable)"
    forget "$id"
  else
    log "removing node $id (no longer listed)"
    # Retried: a node still loading the keys of a full sync answers LOADING, and redis-cli then
    # cannot read its view (it changes nothing before it has every node's).
    wait_until "del-node $id" remove_node "$id"
    # A master emptied by the rebalance became a replica (cluster-allow-replica-migration) and
    # synced a copy of its new master's keys. The reset flushed them in memory but not in the AOF:
    # FLUSHALL does; a hard reset gives it a new id (the cluster refuses a forgotten id for 60 s).
    # So a reused volume comes back empty, as a new node that can join again.
    wait_until "FLUSHALL on $addr" replies_ok "$addr" flushall
    wait_until "CLUSTER RESET HARD on $addr" replies_ok "$addr" cluster reset hard
  fi
done
assign_replicas

# 10. Verify: every listed node sees state ok and ${CLUSTER_SLOTS} slots, knows exactly the listed
# nodes; MASTERS masters with REPLICAS replicas each, every replica in sync with its master.
converged() {
  for hp in $addrs; do
    info=$(cli "$hp" cluster info | tr -d '\\r')
    [ "$(printf '%s\\n' "$info" | field cluster_state)" = ok ] || return 1
    [ "$(printf '%s\\n' "$info" | field cluster_slots_ok)" = ${CLUSTER_SLOTS} ] || return 1
    [ "$(printf '%s\\n' "$info" | field cluster_known_nodes)" = "$count" ] || return 1
  done
  table | awk -v m="$MASTERS" -v per="$REPLICAS" '
    { line[NR] = $0; if ($3 == "slave") c[$4]++ }
    END {
      for (i = 1; i <= NR; i++) { split(line[i], f, " "); if (f[6] < 0 || f[3] == "gone") exit 1; if (f[3] == "master" && f[5] > 0) { k++; if (c[f[1]] + 0 != per) exit 1 } }
      exit k == m ? 0 : 1
    }' || return 1
  for hp in $(table | awk '$3 == "slave" { print $2 }'); do
    [ "$(cli "$hp" info replication | field master_link_status)" = up ] || return 1
  done
}
if ! wait_until "the cluster to converge" converged; then
  cli "$seed" cluster nodes >&2
  exit 1
fi
log "cluster ok: ${CLUSTER_SLOTS} slots, $MASTERS masters, $((count - MASTERS)) replicas ($REPLICAS per master)"
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
    [REDIS_FILES.clusterCreate]: clusterReconcileScript(r),
  };
}
