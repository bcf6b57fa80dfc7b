/**
 * The PgBouncer files of the `pgbouncer-config` ConfigMap: pgbouncer.ini and the
 * container's entry point, which writes the userlist from the Secret and starts PgBouncer.
 *
 * Pure: a function of `PgBouncerFilesInput` only. The same bytes run on loopback
 * (tools/runtime/launcher/pgbouncer.ts), where only addresses and paths are swapped.
 */

export const PGBOUNCER_FILES = { ini: 'pgbouncer.ini', start: 'pgbouncer-start.sh' } as const;

/** Read-only user of PgBouncer's admin console (SHOW ...) for the exporter; its password is made per pod. */
export const PGBOUNCER_STATS_USER = 'pgbouncer_stats';
/** Where the entry point writes the userlist and the exporter's passfile (a tmpfs emptyDir). */
export const PGBOUNCER_RUN_DIR = '/var/run/pgbouncer';
/** Where the application logins' passwords are mounted (alternateUser): the files `password` and `alternate-password`. */
export const PGBOUNCER_CREDENTIALS_DIR = '/etc/pgbouncer-credentials';
/** The files of PGBOUNCER_CREDENTIALS_DIR: the passwords of `user` and of `alternateUser`. */
export const PGBOUNCER_CREDENTIAL_FILES = { password: 'password', alternatePassword: 'alternate-password' } as const;
/** Where the TLS Secret (tls.crt, tls.key, ca.crt: the PostgreSQL certificate's) is mounted. */
export const PGBOUNCER_TLS_DIR = '/etc/pgbouncer-tls';

export interface PgBouncerFilesInput {
  /** Database name clients connect to (and the server database behind it). */
  readonly database: string;
  /** The only role PgBouncer admits for the database (its password comes from the Secret). */
  readonly user: string;
  /**
   * The application's second login (postgres.credentials.alternateLogin): PgBouncer admits both, their
   * passwords read from the files of PGBOUNCER_CREDENTIALS_DIR, and rewrites its userlist and reloads when
   * they change (a rotation). @default - one login, its password from PGBOUNCER_PASSWORD at start
   */
  readonly alternateUser?: string;
  /** Host of the server: the primary Service, which follows the Patroni leader. */
  readonly serverHost: string;
  readonly serverPort: number;
  readonly listenPort: number;
  readonly maxClientConnections: number;
  /** Server connections per pod for the database (transaction pooling). */
  readonly poolSize: number;
  /** Extra server connections a pod opens when clients have waited `reservePoolTimeoutSeconds`. */
  readonly reservePoolSize: number;
  readonly reservePoolTimeoutSeconds: number;
  /** Seconds a client may wait for a server connection before its query fails. */
  readonly queryWaitTimeoutSeconds: number;
  /**
   * Seconds between attempts to reach a server that refused a login. PgBouncer's default (15)
   * stalls every query for ~15 s after a failover; a low value follows the new leader at once.
   */
  readonly serverLoginRetrySeconds: number;
  /**
   * TLS on both sides: clients must use it (the PostgreSQL certificate is presented), and the
   * server's certificate is verified (verify-full) against ca.crt. @default false
   */
  readonly tls?: boolean;
}

/** Every pooled server connection of one PgBouncer pod, at most. */
export function serverConnectionsPerPod(i: Pick<PgBouncerFilesInput, 'poolSize' | 'reservePoolSize'>): number {
  return i.poolSize + i.reservePoolSize;
}

export function renderPgbouncerIni(i: PgBouncerFilesInput): string {
  return `;; Rendered by constructs/pgbouncer/pgbouncer-files.ts. Do not edit: change stacks/<env>.ts.
[databases]
${i.database} = host=${i.serverHost} port=${i.serverPort} dbname=${i.database}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = ${i.listenPort}
unix_socket_dir = ${PGBOUNCER_RUN_DIR}
auth_type = scram-sha-256
auth_file = ${PGBOUNCER_RUN_DIR}/userlist.txt
stats_users = ${PGBOUNCER_STATS_USER}

;; Transaction pooling: a server connection belongs to a client for one transaction only.
;; Session state (SET, advisory locks, LISTEN, named prepared statements) does not survive
;; between transactions: migrations and partition maintenance connect to the primary directly.
pool_mode = transaction
max_client_conn = ${i.maxClientConnections}
default_pool_size = ${i.poolSize}
min_pool_size = 0
reserve_pool_size = ${i.reservePoolSize}
reserve_pool_timeout = ${i.reservePoolTimeoutSeconds}
max_db_connections = ${serverConnectionsPerPod(i)}
query_wait_timeout = ${i.queryWaitTimeoutSeconds}
server_login_retry = ${i.serverLoginRetrySeconds}
server_connect_timeout = 5
;; A server connection that outlived a failover (the old leader, now read-only) is checked
;; before reuse and closed after this long at most.
server_check_query = select 1
server_check_delay = 5
server_lifetime = 600
server_idle_timeout = 60
server_reset_query = DISCARD ALL
;; Session settings clients send at connect are dropped (they would not survive pooling);
;; the application role's defaults (ALTER ROLE ... SET, post-bootstrap.sh) apply on the server.
ignore_startup_parameters = extra_float_digits,options,statement_timeout
tcp_keepalive = 1
${
  i.tls
    ? `
;; TLS both ways. Clients must use it; the server's certificate is checked against the CA and
;; the host name. A renewed certificate is picked up by a reload (pgbouncer-start.sh sends SIGHUP).
client_tls_sslmode = require
client_tls_cert_file = ${PGBOUNCER_TLS_DIR}/tls.crt
client_tls_key_file = ${PGBOUNCER_TLS_DIR}/tls.key
client_tls_ca_file = ${PGBOUNCER_TLS_DIR}/ca.crt
server_tls_sslmode = verify-full
server_tls_ca_file = ${PGBOUNCER_TLS_DIR}/ca.crt
`
    : ''
}
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
stats_period = 15
`;
}

/** The entry point's certificate watcher (TLS on only): SIGHUP (= RELOAD) to PgBouncer when its TLS files change. */
const tlsWatcher = `: "\${PGBOUNCER_TLS_DIR:?PGBOUNCER_TLS_DIR must name the directory holding tls.crt, tls.key and ca.crt}"
# A renewed certificate (kubelet swaps the Secret's files): SIGHUP = RELOAD, which reads them again.
# $$ is PgBouncer's pid once exec'd below.
pid=$$
(
  checksum() { cat "$PGBOUNCER_TLS_DIR/tls.crt" "$PGBOUNCER_TLS_DIR/tls.key" "$PGBOUNCER_TLS_DIR/ca.crt" 2>/dev/null | cksum; }
  last=$(checksum)
  while sleep "\${TLS_RELOAD_INTERVAL_SECONDS:-30}"; do
    now=$(checksum)
    [ "$now" = "$last" ] && continue
    kill -HUP "$pid" && echo "pgbouncer-start: TLS files changed: PgBouncer reloaded" && last=$now
  done
) &
`;

/** Both start scripts: the run directory, private files, the userlist's quoting, a fresh stats password. */
const USERLIST_PREAMBLE = `RUN_DIR="\${PGBOUNCER_RUN_DIR:-${PGBOUNCER_RUN_DIR}}"
umask 077
# userlist.txt quotes names and passwords in double quotes; a double quote inside is doubled.
quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"; }
stats_password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \\n')
`;

/**
 * Entry point with two application logins (`alternateUser`): the userlist comes from the mounted Secret's
 * files, and a loop rewrites it and reloads PgBouncer (SIGHUP = RELOAD, which re-reads auth_file) when they
 * change. Connected clients and pooled server connections stay: a rotation sets a new password only on the
 * login no client uses (docs/postgres-security.md#rotation).
 */
function twoLoginsStartScript(i: Pick<PgBouncerFilesInput, 'user' | 'tls'> & { alternateUser: string }): string {
  const f = PGBOUNCER_CREDENTIAL_FILES;
  return `#!/bin/sh
# Rendered by constructs/pgbouncer/pgbouncer-files.ts: PgBouncer entry point (two application logins).
set -eu
: "\${PGBOUNCER_CREDENTIALS_DIR:?PGBOUNCER_CREDENTIALS_DIR must name the directory holding ${f.password} and ${f.alternatePassword}}"
: "\${PGBOUNCER_CONFIG_DIR:?PGBOUNCER_CONFIG_DIR must name the directory holding ${PGBOUNCER_FILES.ini}}"
${USERLIST_PREAMBLE}userlist() {
  {
    printf '%s %s\\n' "$(quote '${i.user}')" "$(quote "$(cat "$PGBOUNCER_CREDENTIALS_DIR/${f.password}")")"
    printf '%s %s\\n' "$(quote '${i.alternateUser}')" "$(quote "$(cat "$PGBOUNCER_CREDENTIALS_DIR/${f.alternatePassword}")")"
    printf '%s %s\\n' "$(quote '${PGBOUNCER_STATS_USER}')" "$(quote "$stats_password")"
  } >"$RUN_DIR/userlist.txt.new"
  mv "$RUN_DIR/userlist.txt.new" "$RUN_DIR/userlist.txt"
}
credentials() { cat "$PGBOUNCER_CREDENTIALS_DIR/${f.password}" "$PGBOUNCER_CREDENTIALS_DIR/${f.alternatePassword}" | cksum; }
# Read before the userlist is written: a change in between is seen by the loop's first turn.
last_credentials=$(credentials)
userlist
# The exporter sidecar (same uid, same emptyDir) reads the stats password through PGPASSFILE.
printf '*:*:pgbouncer:${PGBOUNCER_STATS_USER}:%s\\n' "$stats_password" >"$RUN_DIR/stats.pgpass.new"
mv "$RUN_DIR/stats.pgpass.new" "$RUN_DIR/stats.pgpass"
# A rotated password (kubelet swaps the Secret's files): a new userlist, then SIGHUP = RELOAD.
# $$ is PgBouncer's pid once exec'd below.
pid=$$
(
  while sleep "\${CREDENTIALS_RELOAD_INTERVAL_SECONDS:-5}"; do
    now=$(credentials) || continue
    [ "$now" = "$last_credentials" ] && continue
    userlist && kill -HUP "$pid" && echo "pgbouncer-start: credentials changed: userlist rewritten, PgBouncer reloaded" &&
      last_credentials=$now
  done
) &
${i.tls ? tlsWatcher : ''}exec pgbouncer "$PGBOUNCER_CONFIG_DIR/${PGBOUNCER_FILES.ini}"
`;
}

/**
 * Entry point: writes the userlist (the application role from PGBOUNCER_PASSWORD, and the
 * stats user with a password made here) and the exporter's passfile, then execs PgBouncer.
 * Inputs: PGBOUNCER_PASSWORD, PGBOUNCER_CONFIG_DIR; PGBOUNCER_RUN_DIR (@default /var/run/pgbouncer);
 * with `tls`, PGBOUNCER_TLS_DIR (its files are watched every TLS_RELOAD_INTERVAL_SECONDS, @default 30).
 * Without `tls` the script is what it was before TLS existed (a plaintext environment does not roll).
 */
export function pgbouncerStartScript(i: Pick<PgBouncerFilesInput, 'user' | 'tls' | 'alternateUser'>): string {
  if (i.alternateUser) return twoLoginsStartScript({ ...i, alternateUser: i.alternateUser });
  return `#!/bin/sh
# Rendered by constructs/pgbouncer/pgbouncer-files.ts: PgBouncer entry point.
set -eu
: "\${PGBOUNCER_PASSWORD:?PGBOUNCER_PASSWORD must hold the password of the application role}"
: "\${PGBOUNCER_CONFIG_DIR:?PGBOUNCER_CONFIG_DIR must name the directory holding ${PGBOUNCER_FILES.ini}}"
${USERLIST_PREAMBLE}{
  printf '%s %s\\n' "$(quote '${i.user}')" "$(quote "$PGBOUNCER_PASSWORD")"
  printf '%s %s\\n' "$(quote '${PGBOUNCER_STATS_USER}')" "$(quote "$stats_password")"
} >"$RUN_DIR/userlist.txt.new"
mv "$RUN_DIR/userlist.txt.new" "$RUN_DIR/userlist.txt"
# The exporter sidecar (same uid, same emptyDir) reads the stats password through PGPASSFILE.
printf '*:*:pgbouncer:${PGBOUNCER_STATS_USER}:%s\\n' "$stats_password" >"$RUN_DIR/stats.pgpass.new"
mv "$RUN_DIR/stats.pgpass.new" "$RUN_DIR/stats.pgpass"
${i.tls ? tlsWatcher : ''}exec pgbouncer "$PGBOUNCER_CONFIG_DIR/${PGBOUNCER_FILES.ini}"
`;
}

export function pgbouncerConfigFiles(i: PgBouncerFilesInput): Record<string, string> {
  return { [PGBOUNCER_FILES.ini]: renderPgbouncerIni(i), [PGBOUNCER_FILES.start]: pgbouncerStartScript(i) };
}

/**
 * Arguments of the pgbouncer_exporter sidecar: the stats user on the pod's own PgBouncer
 * (password from PGPASSFILE), no pid file (another container's process).
 */
export function pgbouncerExporterArgs(
  pgbouncer: { host: string; port: number },
  listen: string,
  /** The CA file when PgBouncer requires TLS (the certificate names 127.0.0.1): verify-full. */
  caFile?: string,
): string[] {
  const ssl = caFile ? `sslmode=verify-full&sslrootcert=${caFile}` : 'sslmode=disable';
  return [
    `--pgBouncer.connectionString=postgres://${PGBOUNCER_STATS_USER}@${pgbouncer.host}:${pgbouncer.port}/pgbouncer?${ssl}`,
    `--web.listen-address=${listen}`,
    '--pgBouncer.pid-file=',
  ];
}
