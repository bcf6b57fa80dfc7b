/**
 * The PostgreSQL files that ship in the `postgres-config` ConfigMap: postgresql.conf,
 * pg_hba.conf and three POSIX sh scripts (primary start, primary init, replica start).
 *
 * Pure functions of the environment config. The same bytes run in the official
 * `postgres` image and on loopback in our tests (tools/runtime/launcher): everything that
 * differs between the two (addresses, ports, paths, passwords) is read from
 * environment variables by the scripts, never edited into the text.
 */
import { parseQuantity } from '../core/quantity';

/** Values of `synchronous_commit`. */
export const SYNCHRONOUS_COMMIT = ['on', 'remote_write', 'remote_apply', 'local', 'off'] as const;

/** What the PostgreSQL files are rendered from (the tier's settings). */
export interface PostgresConfig {
  /** How many replicas must confirm a commit (0 = asynchronous). */
  readonly synchronousReplicas: number;
  readonly synchronousCommit: (typeof SYNCHRONOUS_COMMIT)[number];
  readonly maxConnections: number;
  readonly database: string;
  readonly user: string;
  readonly storage: { readonly size: string };
  /** Memory settings are sized from the container's memory request. */
  readonly resources: { readonly requests: { readonly memory: string } };
}

/** Roles and file names shared by the construct, the scripts and the launcher. */
export const POSTGRES_FILES = {
  conf: 'postgresql.conf',
  hba: 'pg_hba.conf',
  primaryStart: 'primary-start.sh',
  primaryInit: 'primary-init.sh',
  replicaStart: 'replica-start.sh',
} as const;

/** Name of the replication role (not configurable: nothing outside the tier uses it). */
export const REPLICATION_USER = 'replicator';
/** Bootstrap superuser; reachable by peer auth on the socket and by password on loopback only. */
export const SUPERUSER = 'postgres';
export const POSTGRES_PORT = 5432;

/** Default pod networks allowed to connect: the RFC 1918 ranges every CNI allocates from. */
export const DEFAULT_POD_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

const MiB = 2 ** 20;

/** Memory settings derived from the container's memory request (the pgtune rules of thumb). */
export function postgresMemory(p: Pick<PostgresConfig, 'resources' | 'maxConnections'>): {
  sharedBuffersMB: number;
  effectiveCacheSizeMB: number;
  maintenanceWorkMemMB: number;
  workMemKB: number;
} {
  const totalMB = Math.floor(parseQuantity(p.resources.requests.memory) / MiB);
  if (!(totalMB >= 128)) {
    throw new Error(
      `'resources.requests.memory' (${p.resources.requests.memory}) must be at least 128Mi: ` +
        'shared_buffers, work_mem and the WAL buffers are sized from it',
    );
  }
  const sharedBuffersMB = Math.floor(totalMB / 4);
  return {
    sharedBuffersMB,
    effectiveCacheSizeMB: Math.floor((totalMB * 3) / 4),
    maintenanceWorkMemMB: Math.min(2048, Math.max(16, Math.floor(totalMB / 16))),
    // What is left after shared_buffers, spread over every connection running ~3 sorts at once.
    workMemKB: Math.max(1024, Math.floor(((totalMB - sharedBuffersMB) * 1024) / (p.maxConnections * 3))),
  };
}

/** postgresql.conf. Listen address, port and socket directory are passed by the start scripts. */
export function renderPostgresqlConf(p: PostgresConfig): string {
  const m = postgresMemory(p);
  const storageMB = Math.floor(parseQuantity(p.storage.size) / MiB);
  const sync =
    p.synchronousReplicas > 0
      ? `'ANY ${p.synchronousReplicas} (*)'` // quorum over whichever replicas are streaming
      : "''";
  return `# Rendered by constructs/config-files/postgres.ts. Do not edit: change stacks/<env>.ts.
listen_addresses = '*'
port = ${POSTGRES_PORT}
max_connections = ${p.maxConnections}
password_encryption = scram-sha-256

# Memory: from the container's memory request (${p.resources.requests.memory}).
shared_buffers = ${m.sharedBuffersMB}MB
effective_cache_size = ${m.effectiveCacheSizeMB}MB
maintenance_work_mem = ${m.maintenanceWorkMemMB}MB
work_mem = ${m.workMemKB}kB
# Kubernetes gives /dev/shm 64Mi unless we mount more; mmap keeps parallel queries off it.
dynamic_shared_memory_type = mmap
huge_pages = off

# WAL and replication: every replica streams through a physical slot named after its pod.
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
# A replica gone for good must not fill the primary's disk through its slot (a quarter of the PVC).
max_slot_wal_keep_size = ${Math.max(1024, Math.floor(storageMB / 4))}MB
max_wal_size = ${Math.max(1024, Math.floor(storageMB / 10))}MB
min_wal_size = 80MB
checkpoint_completion_target = 0.9
wal_compression = on
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
synchronous_standby_names = ${sync}
synchronous_commit = ${p.synchronousCommit}

# Observability.
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.max = 5000
pg_stat_statements.track = top
track_io_timing = on
track_activity_query_size = 4096
log_destination = 'stderr'
logging_collector = off
log_min_duration_statement = 1000
log_checkpoints = on
log_connections = off
log_lock_waits = on
log_temp_files = 0
log_line_prefix = '%m [%p] %q%u@%d '

# Background workers for a small number of cores.
max_worker_processes = 8
max_parallel_workers_per_gather = 2
max_parallel_workers = 4
random_page_cost = 1.1
effective_io_concurrency = 200
`;
}

/**
 * pg_hba.conf: scram-sha-256 everywhere; the superuser only over the socket (peer) or
 * loopback; replication only for the replication role; the application role only to
 * its database. First match wins, so the final line rejects everything else.
 */
export function renderPgHba(p: PostgresConfig, podCidrs: readonly string[] = DEFAULT_POD_CIDRS): string {
  for (const cidr of podCidrs) {
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(cidr)) {
      throw new Error(`'podCidrs' entry (${cidr}) must be an IPv4 CIDR such as 10.0.0.0/8`);
    }
  }
  const lines = [
    '# Rendered by constructs/config-files/postgres.ts. Do not edit.',
    '# TYPE  DATABASE      USER            ADDRESS          METHOD',
    `local   all           ${SUPERUSER}        peer`,
    'local   all           all                              scram-sha-256',
    // Loopback is the pod itself (the exporter sidecar, pg_basebackup in the replica's init).
    'host    all           all             127.0.0.0/8      scram-sha-256',
    `host    replication   ${REPLICATION_USER}      127.0.0.0/8      scram-sha-256`,
    ...podCidrs.map((c) => `host    replication   ${REPLICATION_USER}      ${c.padEnd(16)} scram-sha-256`),
    ...podCidrs.map((c) => `host    ${p.database.padEnd(13)} ${p.user.padEnd(15)} ${c.padEnd(16)} scram-sha-256`),
    'host    all           all             0.0.0.0/0        reject',
    'host    all           all             ::/0             reject',
  ];
  return lines.join('\n') + '\n';
}

/** Common prologue: strict mode, PATH for the Debian layout, and the inputs every script needs. */
const PROLOGUE = `set -eu
# The official image has the binaries on PATH; Debian hosts keep them here.
PATH="$PATH:/usr/lib/postgresql/15/bin"
: "\${PGDATA:?PGDATA must name the data directory}"
: "\${PG_CONFIG_DIR:?PG_CONFIG_DIR must name the directory holding postgresql.conf and the scripts}"
PGPORT="\${PGPORT:-${POSTGRES_PORT}}"
PG_SOCKET_DIR="\${PG_SOCKET_DIR:-/var/run/postgresql}"
PG_LISTEN_ADDRESSES="\${PG_LISTEN_ADDRESSES:-*}"
TMPDIR="\${TMPDIR:-/tmp}"
export PGPORT
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
`;

/**
 * Idempotent primary init: application role + database, replication role, superuser
 * password, pg_stat_statements. Runs over the unix socket as the superuser (peer auth).
 * Names come from POSTGRES_USER and POSTGRES_DB, passwords from POSTGRES_PASSWORD,
 * REPLICATION_PASSWORD and POSTGRES_SUPERUSER_PASSWORD.
 */
export function primaryInitScript(): string {
  return `#!/bin/sh
# Rendered by constructs/config-files/postgres.ts: creates roles, database and extensions.
# Safe to run again: every statement checks before it creates.
set -eu
: "\${POSTGRES_USER:?}" "\${POSTGRES_DB:?}"
: "\${POSTGRES_PASSWORD:?}" "\${REPLICATION_PASSWORD:?}" "\${POSTGRES_SUPERUSER_PASSWORD:?}"
# client_min_messages: a re-run's "already exists, skipping" notices are not news.
PGHOST="\${PG_SOCKET_DIR:-/var/run/postgresql}" PGUSER=${SUPERUSER} PGDATABASE=postgres PGOPTIONS='-c client_min_messages=warning' \\
psql -X -q -v ON_ERROR_STOP=1 \\
  -v app_user="$POSTGRES_USER" -v app_db="$POSTGRES_DB" -v repl_user=${REPLICATION_USER} \\
  -v app_password="$POSTGRES_PASSWORD" -v repl_password="$REPLICATION_PASSWORD" \\
  -v super_password="$POSTGRES_SUPERUSER_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') \\gexec
ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';
SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN', :'repl_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'repl_user') \\gexec
ALTER ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_password';
ALTER ROLE ${SUPERUSER} WITH PASSWORD :'super_password';
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app_db') \\gexec
\\connect :"app_db"
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
-- The application reads its own query statistics and replica lag (health endpoints).
GRANT pg_read_all_stats TO :"app_user";
ALTER SCHEMA public OWNER TO :"app_user";
SQL
`;
}

/**
 * Primary entry point. On an empty data directory: initdb into a side directory, start
 * on the socket only, run the init script, stop, then rename into place — so a crash
 * half-way leaves no data directory that looks initialised. Then exec postgres.
 */
export function primaryStartScript(): string {
  return `#!/bin/sh
# Rendered by constructs/config-files/postgres.ts: PostgreSQL primary entry point.
${PROLOGUE}
CONF="-c config_file=$PG_CONFIG_DIR/${POSTGRES_FILES.conf} -c hba_file=$PG_CONFIG_DIR/${POSTGRES_FILES.hba}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  staging="$PGDATA.init"
  rm -rf "$staging"
  log "empty data directory: initdb"
  initdb -D "$staging" --username=${SUPERUSER} --auth-local=peer --auth-host=scram-sha-256 \\
    --encoding=UTF8 --locale=C.UTF-8 --data-checksums >&2
  # Socket only, and no synchronous standby to wait for while no replica can exist yet.
  pg_ctl -D "$staging" -w -t 60 -l "$TMPDIR/init.log" \\
    -o "$CONF -c listen_addresses='' -c port=$PGPORT -c unix_socket_directories=$PG_SOCKET_DIR -c synchronous_standby_names=''" \\
    start >&2 || { cat "$TMPDIR/init.log" >&2; exit 1; }
  # pg_ctl detaches the server: stop it if init fails, or it would outlive this container start.
  trap 'pg_ctl -D "$staging" -m immediate stop >/dev/null 2>&1 || true' EXIT
  PG_SOCKET_DIR="$PG_SOCKET_DIR" sh "$PG_CONFIG_DIR/${POSTGRES_FILES.primaryInit}"
  pg_ctl -D "$staging" -w -m fast stop >&2
  trap - EXIT
  if [ -d "$PGDATA" ]; then rmdir "$PGDATA"; fi
  mv "$staging" "$PGDATA"
  log "initialised"
fi
# A standby.signal here would mean someone copied a replica's volume: refuse rather than diverge.
if [ -e "$PGDATA/standby.signal" ]; then
  log "standby.signal found in the primary's data directory; remove it only if this is a deliberate promotion"
  exit 1
fi
exec postgres -D "$PGDATA" $CONF -c listen_addresses="$PG_LISTEN_ADDRESSES" -c port="$PGPORT" \\
  -c unix_socket_directories="$PG_SOCKET_DIR"
`;
}

/**
 * Replica entry point. Empty data directory: wait for the primary, make sure the
 * physical slot named after the pod exists, and `pg_basebackup -R -X stream` through
 * it into a side directory renamed into place when complete. Non-empty: start as a
 * standby. Connection settings are passed on every start (they win over what -R wrote),
 * so a primary that moved is followed, and the password lives only in a passfile on tmpfs.
 * Inputs: PRIMARY_HOST, PRIMARY_PORT, REPLICATION_PASSWORD, POD_NAME.
 */
export function replicaStartScript(): string {
  return `#!/bin/sh
# Rendered by constructs/config-files/postgres.ts: PostgreSQL streaming replica entry point.
${PROLOGUE}
: "\${PRIMARY_HOST:?PRIMARY_HOST must name the primary}" "\${REPLICATION_PASSWORD:?}" "\${POD_NAME:?POD_NAME must be the pod name}"
PRIMARY_PORT="\${PRIMARY_PORT:-${POSTGRES_PORT}}"
# Slot names allow [a-z0-9_]: postgres-replica-0 -> postgres_replica_0.
SLOT=$(printf '%s' "$POD_NAME" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_')
PGPASSFILE="$TMPDIR/pgpass"
umask 077
printf '*:*:*:%s:%s\\n' ${REPLICATION_USER} "$(printf '%s' "$REPLICATION_PASSWORD" | sed 's/[\\\\:]/\\\\&/g')" > "$PGPASSFILE"
export PGPASSFILE
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  log "empty data directory: waiting for the primary $PRIMARY_HOST:$PRIMARY_PORT"
  i=0
  until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -t 2; do
    i=$((i + 1)); [ "$i" -lt "\${PRIMARY_WAIT_SECONDS:-600}" ] || { log "primary not ready"; exit 1; }
    sleep 1
  done
  # --if-not-exists: a replica that lost its volume reuses its slot instead of failing.
  pg_receivewal -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U ${REPLICATION_USER} -w \\
    --slot="$SLOT" --create-slot --if-not-exists >&2
  staging="$PGDATA.basebackup"
  rm -rf "$staging"
  log "pg_basebackup through slot $SLOT"
  pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U ${REPLICATION_USER} -w -D "$staging" \\
    -R -X stream -S "$SLOT" --checkpoint=fast --no-password >&2
  if [ -d "$PGDATA" ]; then rmdir "$PGDATA"; fi
  mv "$staging" "$PGDATA"
  log "base backup complete"
fi
touch "$PGDATA/standby.signal"
exec postgres -D "$PGDATA" -c config_file="$PG_CONFIG_DIR/${POSTGRES_FILES.conf}" \\
  -c hba_file="$PG_CONFIG_DIR/${POSTGRES_FILES.hba}" \\
  -c listen_addresses="$PG_LISTEN_ADDRESSES" -c port="$PGPORT" -c unix_socket_directories="$PG_SOCKET_DIR" \\
  -c primary_conninfo="host=$PRIMARY_HOST port=$PRIMARY_PORT user=${REPLICATION_USER} passfile=$PGPASSFILE application_name=$SLOT" \\
  -c primary_slot_name="$SLOT"
`;
}

/** Every file of the `postgres-config` ConfigMap, keyed by file name. */
export function postgresConfigFiles(p: PostgresConfig, podCidrs?: readonly string[]): Record<string, string> {
  return {
    [POSTGRES_FILES.conf]: renderPostgresqlConf(p),
    [POSTGRES_FILES.hba]: renderPgHba(p, podCidrs),
    [POSTGRES_FILES.primaryStart]: primaryStartScript(),
    [POSTGRES_FILES.primaryInit]: primaryInitScript(),
    [POSTGRES_FILES.replicaStart]: replicaStartScript(),
  };
}
