/**
 * patroni.yml, the one file that configures a Patroni-managed PostgreSQL member.
 *
 * Pure: a function of `PatroniFilesInput` only (no environment config). The same bytes
 * ship in the `postgres-files` ConfigMap and run on loopback (tools/runtime/launcher/patroni.ts),
 * where only addresses, paths and the DCS section are swapped (see `twinPatroniConfig`
 * there); per-pod values come from PATRONI_* environment variables, passwords from the credentials
 * Secret's files through the entry point (`patroniStartScript`), so a rotation is a reload.
 *
 * Every server parameter lives in Patroni's dynamic configuration (`bootstrap.dcs`, see
 * `patroniDynamicConfig`): Patroni writes it into the DCS when the cluster is first
 * initialised, and the reconfigure Job (patroni-reconfigure.ts) patches a live cluster to
 * it, so a changed parameter is applied by a reload, or by a rolling restart with a
 * switchover where PostgreSQL needs one. Local `postgresql.parameters` would override the
 * DCS on their member and follow the ConfigMap only on a restart: only the per-member
 * socket directory stays there.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { stringify } from 'yaml';
import { BACKUP_STATUS_SQL, PGBACKREST_COMMANDS, PGBACKREST_FILES } from './pgbackrest-files';

/** File names of the `postgres-files` ConfigMap. */
export const PATRONI_FILES = {
  patroni: 'patroni.yml',
  postBootstrap: 'post-bootstrap.sh',
  /** The roles, ownership and grants (roles-job.ts): post-bootstrap.sh and the roles Job run it. */
  roles: 'roles.sh',
  /** The reconfigure Job's script (patroni-reconfigure.ts). */
  reconfigure: 'reconfigure.py',
  /** The Patroni container's liveness check (patroni-liveness.ts). */
  liveness: 'liveness.py',
  /** The tls-reload sidecar's loop (TLS on only): a renewed certificate is picked up by a reload. */
  tlsReload: 'tls-reload.sh',
  /** The Patroni container's entry point: the passwords from the Secret's files, reloaded when they change. */
  start: 'patroni-start.sh',
} as const;

/**
 * The entry point's inputs (env names), shared by the StatefulSet and the twin that runs the same script.
 * The two password files are the credentials Secret's keys, mounted as a volume; the runtime directory
 * is private to the container (an emptyDir).
 */
export const PATRONI_START_ENV = {
  config: 'PATRONI_CONFIG_FILE',
  superuserPassword: 'POSTGRES_SUPERUSER_PASSWORD_FILE',
  replicationPassword: 'POSTGRES_REPLICATION_PASSWORD_FILE',
  runtimeDir: 'PATRONI_RUNTIME_CONFIG_DIR',
  interval: 'CREDENTIALS_RELOAD_INTERVAL_SECONDS',
  /** The exporter role's password (its own Secret, mounted as a file). */
  exporterPassword: 'EXPORTER_PASSWORD_FILE',
  /** Where the exporter sidecar's passfile goes (a directory both containers mount, same uid). */
  exporterPassfile: 'EXPORTER_PGPASSFILE',
} as const;

/** The file names of the passwords in the members' credentials volume (each mapped from its Secret key). */
export const PATRONI_CREDENTIAL_FILES = {
  superuserPassword: 'superuser-password',
  replicationPassword: 'replication-password',
  exporterPassword: 'exporter-password',
} as const;

/**
 * Patroni's entry point. Patroni reads a directory of YAML files in name order and merges them; on
 * SIGHUP it reads them again and applies `postgresql.authentication` without a restart (a replica's
 * primary_conninfo passfile is rewritten; the leader keeps the new values for a later demotion or
 * pg_rewind). Environment variables would override the files on every reload, so the passwords come
 * from files, never from PATRONI_* env:
 *   - `00-patroni.yml`: a symlink to the shipped patroni.yml (a ConfigMap update is seen as before);
 *   - `50-credentials.yml`: superuser, replication and rewind passwords (rewind shares replication's key),
 *     written from the mounted Secret's files;
 * then a loop compares the files' checksum every CREDENTIALS_RELOAD_INTERVAL_SECONDS (@default 5) and,
 * when it changed, rewrites `50-credentials.yml` and sends SIGHUP to Patroni (its pid is this shell's,
 * once exec'd; as the container's PID 1 Patroni passes SIGHUP on to its worker). It signals only once
 * Patroni handles SIGHUP (`SigCgt`), so a change during start-up waits a turn instead of killing it.
 * It also writes the exporter sidecar's passfile (`*:*:*:<exporter user>:<password>`, 0600) from the
 * exporter's Secret file, and rewrites it on a change: the exporter's driver (lib/pq) reads the passfile
 * for each new connection, so the exporter follows a rotation without a restart.
 * A password must be one line (a YAML scalar, a passfile line); a file with more is refused, at start
 * and on a change. A rotation (docs/postgres-security.md#rotation) thus needs no restart and no switchover.
 */
export function patroniStartScript(exporterUser: string): string {
  const e = PATRONI_START_ENV;
  return `#!/bin/sh
# Rendered by constructs/postgres/patroni-files.ts: Patroni's entry point (passwords from files, reloaded).
set -eu
: "\${${e.config}:?${e.config} must name the shipped ${PATRONI_FILES.patroni}}"
: "\${${e.superuserPassword}:?${e.superuserPassword} must name the file holding the superuser password}"
: "\${${e.replicationPassword}:?${e.replicationPassword} must name the file holding the replication password}"
: "\${${e.runtimeDir}:?${e.runtimeDir} must name a private, writable directory}"
: "\${${e.exporterPassword}:?${e.exporterPassword} must name the file holding the exporter role password}"
: "\${${e.exporterPassfile}:?${e.exporterPassfile} must name the exporter sidecar passfile to write}"
dir=$${e.runtimeDir}
umask 077
mkdir -p "$dir"
ln -sfn "$${e.config}" "$dir/00-${PATRONI_FILES.patroni}"
nl='
'
# One password, refused when it has more than one line.
one_line() {
  value=$(cat "$1") || return 1
  case $value in
  *"$nl"*)
    echo "patroni-start: $1 holds more than one line; a password is one line" >&2
    return 1
    ;;
  esac
  printf '%s' "$value"
}
# As a YAML single-quoted scalar (a quote inside is doubled).
scalar() {
  value=$(one_line "$1") || return 1
  printf "'%s'" "$(printf '%s' "$value" | sed "s/'/''/g")"
}
credentials() { cat "$${e.superuserPassword}" "$${e.replicationPassword}" "$${e.exporterPassword}" | cksum; }
# The exporter's passfile: a colon or backslash in the password is escaped with a backslash.
write_exporter_passfile() {
  value=$(one_line "$${e.exporterPassword}") || return 1
  printf '*:*:*:%s:%s\\n' '${exporterUser}' "$(printf '%s' "$value" | sed 's/[\\\\:]/\\\\&/g')" >"$${e.exporterPassfile}.new"
  mv "$${e.exporterPassfile}.new" "$${e.exporterPassfile}"
}
write_credentials() {
  superuser=$(scalar "$${e.superuserPassword}") || return 1
  replication=$(scalar "$${e.replicationPassword}") || return 1
  {
    echo 'postgresql:'
    echo '  authentication:'
    printf '    superuser: {password: %s}\\n' "$superuser"
    printf '    replication: {password: %s}\\n' "$replication"
    printf '    rewind: {password: %s}\\n' "$replication"
  } >"$dir/50-credentials.yml.new"
  mv "$dir/50-credentials.yml.new" "$dir/50-credentials.yml"
  write_exporter_passfile
}
# Read before the files are written: a change in between is seen by the loop's first turn.
last=$(credentials)
write_credentials
# $$ is Patroni's pid once exec'd below.
pid=$$
(
  handles_hup() { sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null | grep -q '[13579bdfBDF]$'; }
  while sleep "\${${e.interval}:-5}"; do
    now=$(credentials) || continue
    [ "$now" = "$last" ] && continue
    handles_hup || continue
    if write_credentials && kill -HUP "$pid"; then
      echo "patroni-start: credentials changed: Patroni reloaded"
      last=$now
    fi
  done
) &
exec patroni "$dir"
`;
}

/**
 * The tls-reload sidecar: PostgreSQL reads its certificate and key again on a reload (SIGHUP),
 * not by itself, and kubelet swaps a renewed Secret's files in place. Every
 * TLS_RELOAD_INTERVAL_SECONDS (@default 30) the loop compares the files' checksum and, when it
 * changed, runs `SELECT pg_reload_conf()` over the socket (peer: the postgres user). New
 * connections then get the new certificate; open ones keep theirs. No restart, no failover.
 * Each turn touches TLS_RELOAD_HEARTBEAT (@default $PGHOST/tls-reload.alive), which the probes
 * read (tlsReloadProbes). The shell is the container's PID 1, which ignores a signal it does not
 * trap: the trap and the backgrounded sleep make kubelet's SIGTERM end it at once, instead of
 * holding the member's pod for its whole grace period.
 * Inputs: TLS_DIR, PGHOST (the socket directory), PGPORT, PGUSER.
 */
export function tlsReloadScript(): string {
  return `#!/bin/sh
# Rendered by constructs/postgres/patroni-files.ts: reload PostgreSQL when its TLS files change.
set -eu
: "\${TLS_DIR:?}" "\${PGHOST:?}"
interval="\${TLS_RELOAD_INTERVAL_SECONDS:-30}"
heartbeat="\${TLS_RELOAD_HEARTBEAT:-$PGHOST/tls-reload.alive}"
checksum() { cat "$TLS_DIR/tls.crt" "$TLS_DIR/tls.key" "$TLS_DIR/ca.crt" 2>/dev/null | cksum; }
sleeper=
pause() {
  : >"$heartbeat"
  sleep "$1" &
  sleeper=$!
  wait "$sleeper" || true
}
trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT
last=$(checksum)
while :; do
  pause "$interval"
  now=$(checksum)
  [ "$now" = "$last" ] && continue
  if psql -X -q -d postgres -tAc 'SELECT pg_reload_conf()' >/dev/null; then
    echo "tls-reload: TLS files changed: PostgreSQL reloaded"
    last=$now
  else
    echo "tls-reload: TLS files changed but the reload failed; retrying" >&2
  fi
done
`;
}

/**
 * The tls-reload sidecar's probes: ready once the loop turns (a member is never taken out of
 * rotation by it afterwards: a failed reload leaves the previous certificate serving); live while
 * the heartbeat is younger than three turns.
 */
export function tlsReloadProbes(
  heartbeat: string,
  intervalSeconds: number,
): { readiness: string[]; liveness: string[] } {
  const maxAgeSeconds = 3 * intervalSeconds + 10;
  return {
    readiness: ['test', '-e', heartbeat],
    liveness: ['sh', '-c', `[ $(($(date +%s) - $(date -r ${heartbeat} +%s))) -lt ${maxAgeSeconds} ]`],
  };
}

/** synchronous_commit values PostgreSQL accepts. */
export const SYNCHRONOUS_COMMIT = ['on', 'remote_write', 'remote_apply', 'local', 'off'] as const;
export type SynchronousCommit = (typeof SYNCHRONOUS_COMMIT)[number];

/** Patroni's role-label values in 3.0 (Debian 12's patroni; 3.1+ says `primary` too). */
export const PATRONI_ROLES = { leader: 'master', replica: 'replica' } as const;

/** What patroni.yml is rendered from. */
export interface PatroniFilesInput {
  /** Patroni scope: the cluster name (ConfigMaps `<scope>-leader`, `<scope>-config`). */
  readonly scope: string;
  /** Namespace Patroni's Kubernetes DCS works in. */
  readonly namespace: string;
  /** Labels every member pod carries: Patroni lists its members by them. */
  readonly podLabels: Readonly<Record<string, string>>;
  /** Label Patroni adds to pods with the cluster name. */
  readonly scopeLabel: string;
  /** Label Patroni sets to `master` / `replica` on each pod; the Services select on it. */
  readonly roleLabel: string;
  readonly port: number;
  readonly restApiPort: number;
  readonly dataDir: string;
  readonly socketDir: string;
  /** Directory the ConfigMap is mounted at (post_bootstrap runs the script from there). */
  readonly configDir: string;
  /** Where a password file Patroni writes may live (a writable tmpfs). */
  readonly pgpassFile: string;
  readonly ttlSeconds: number;
  readonly loopWaitSeconds: number;
  readonly retryTimeoutSeconds: number;
  /** A replica further behind than this is never promoted. */
  readonly maximumLagOnFailoverBytes: number;
  /** Replicas that confirm each commit (Patroni's synchronous_mode); 0 = asynchronous. */
  readonly synchronousReplicas: number;
  readonly synchronousCommit: string;
  readonly maxConnections: number;
  /** Server parameters of every member (tuning, then the user's own): see `postgresTuning`. */
  readonly tuning: Readonly<Record<string, string | number>>;
  /** pg_hba.conf lines, in order. */
  readonly hba: readonly string[];
  readonly superuser: string;
  readonly replicationUser: string;
  readonly rewindUser: string;
  /** WAL archiving and backups with pgBackRest (pgbackrest-files.ts); absent: none. */
  readonly backup?: PatroniBackupInput;
  /** TLS: the server certificate every member presents, and the CA members verify each other with; absent: none. */
  readonly tls?: PatroniTlsInput;
}

/** Where a member finds its TLS files (a Secret with cert-manager's keys, mounted read-only). */
export interface PatroniTlsInput {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** What pgBackRest changes in patroni.yml. */
export interface PatroniBackupInput {
  /** archive_timeout: a segment is archived at least this often while there are writes. */
  readonly archiveTimeoutSeconds: number;
  /** Bootstrap from the repository (restore.sh) instead of initdb; `targetTime` as recovery_target_time reads it. */
  readonly restore?: { readonly targetTime?: string };
}

/** Name of Patroni's bootstrap method and replica-creation method that use pgBackRest. */
export const PGBACKREST_METHOD = 'pgbackrest';

/** Patroni's own rule: a leader must be able to renew its key before it expires. */
export function checkPatroniTimings(
  t: Pick<PatroniFilesInput, 'ttlSeconds' | 'loopWaitSeconds' | 'retryTimeoutSeconds'>,
): void {
  const need = t.loopWaitSeconds + 2 * t.retryTimeoutSeconds;
  if (need > t.ttlSeconds) {
    throw new Error(
      `'patroni.ttlSeconds' (${t.ttlSeconds}) must be >= loopWaitSeconds + 2 x retryTimeoutSeconds (${need}): ` +
        `raise ttlSeconds to ${need} or lower loopWaitSeconds / retryTimeoutSeconds`,
    );
  }
}

/** A Patroni dynamic configuration: what `bootstrap.dcs` seeds and the reconfigure Job patches a live cluster to. */
export interface PatroniDynamicConfig {
  readonly ttl: number;
  readonly loop_wait: number;
  readonly retry_timeout: number;
  readonly maximum_lag_on_failover: number;
  readonly synchronous_mode: boolean;
  readonly synchronous_node_count?: number;
  readonly postgresql: {
    readonly use_pg_rewind: boolean;
    readonly use_slots: boolean;
    readonly parameters: Readonly<Record<string, string | number>>;
  };
}

/** The cluster-wide configuration: timings, synchronous replication and every server parameter. */
export function patroniDynamicConfig(i: PatroniFilesInput): PatroniDynamicConfig {
  checkPatroniTimings(i);
  return {
    ttl: i.ttlSeconds,
    loop_wait: i.loopWaitSeconds,
    retry_timeout: i.retryTimeoutSeconds,
    maximum_lag_on_failover: i.maximumLagOnFailoverBytes,
    // Patroni names the standby in synchronous_standby_names itself and promotes only a
    // synchronous one, so no acknowledged commit is lost on failover. Not strict: with no
    // replica left the primary keeps taking writes (alone) rather than blocking them all.
    synchronous_mode: i.synchronousReplicas > 0,
    ...(i.synchronousReplicas > 0 ? { synchronous_node_count: i.synchronousReplicas } : {}),
    postgresql: {
      use_pg_rewind: true,
      // A physical slot per member on the leader: a replica that is briefly away loses no WAL.
      use_slots: true,
      parameters: {
        max_connections: i.maxConnections,
        max_wal_senders: 10,
        max_replication_slots: 10,
        max_worker_processes: 8,
        wal_level: 'replica',
        wal_log_hints: 'on',
        hot_standby: 'on',
        wal_keep_size: '256MB',
        password_encryption: 'scram-sha-256',
        synchronous_commit: i.synchronousCommit,
        ...i.tuning,
        ...(i.backup
          ? {
              // Every member: whichever leads archives (a replica with archive_mode 'on' does not).
              archive_mode: 'on',
              archive_command: PGBACKREST_COMMANDS.archivePush,
              // Bounds the WAL lost with the leader's volume when no replica has it (the RPO).
              archive_timeout: `${i.backup.archiveTimeoutSeconds}s`,
            }
          : {}),
      },
    },
  };
}

/** patroni.yml. Per-pod values come from PATRONI_NAME, PATRONI_KUBERNETES_POD_IP and the *_CONNECT_ADDRESS vars. */
export function renderPatroniYml(i: PatroniFilesInput): string {
  const b = i.backup;
  const restoreCommand = { restore_command: PGBACKREST_COMMANDS.archiveGet };
  const doc = {
    scope: i.scope,
    restapi: { listen: `0.0.0.0:${i.restApiPort}` },
    kubernetes: {
      namespace: i.namespace,
      labels: { ...i.podLabels },
      scope_label: i.scopeLabel,
      role_label: i.roleLabel,
      // ConfigMaps (not Endpoints) hold the leader lock: the Role then needs no write access to Endpoints.
      use_endpoints: false,
    },
    bootstrap: {
      // Seeds a new cluster's DCS; the reconfigure Job brings a live one to the same document.
      dcs: patroniDynamicConfig(i),
      ...(b?.restore
        ? {
            // Only when Patroni bootstraps (no initialize key, an empty data directory): never over data.
            method: PGBACKREST_METHOD,
            [PGBACKREST_METHOD]: {
              command: `sh ${i.configDir}/${PGBACKREST_FILES.restore}`,
              no_params: true,
              // Patroni strips recovery settings from postgresql.auto.conf: it writes these instead.
              keep_existing_recovery_conf: false,
              recovery_conf: {
                ...restoreCommand,
                ...(b.restore.targetTime ? { recovery_target_time: b.restore.targetTime } : {}),
                recovery_target_action: 'promote',
                recovery_target_timeline: 'latest',
              },
            },
          }
        : {}),
      initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, 'data-checksums'],
      // Roles, database and extensions (idempotent); Patroni appends a connection string argument.
      post_bootstrap: `sh ${i.configDir}/${PATRONI_FILES.postBootstrap}`,
    },
    postgresql: {
      listen: `0.0.0.0:${i.port}`,
      data_dir: i.dataDir,
      // The official image and Debian hosts both keep the binaries here (not on Patroni's PATH).
      bin_dir: '/usr/lib/postgresql/15/bin',
      pgpass: i.pgpassFile,
      use_unix_socket: true,
      authentication: {
        // Patroni's own superuser connections use the socket (use_unix_socket): no TLS there.
        superuser: { username: i.superuser },
        // A replica streams from, and pg_rewind reads, the leader at its pod IP: TLS with the CA
        // verified (verify-ca: an IP is not in the certificate's names; pg_hba admits these roles only).
        replication: { username: i.replicationUser, ...memberTls(i.tls) },
        rewind: { username: i.rewindUser, ...memberTls(i.tls) },
      },
      // Local parameters override the DCS on this member: only what is per member belongs here
      // (the socket directory; the TLS files, which are paths of the member's own mounts).
      parameters: {
        unix_socket_directories: i.socketDir,
        ...(i.tls
          ? {
              ssl: 'on',
              ssl_cert_file: i.tls.certFile,
              ssl_key_file: i.tls.keyFile,
              ssl_min_protocol_version: 'TLSv1.2',
            }
          : {}),
      },
      pg_hba: [...i.hba],
      ...(b
        ? {
            // A replica behind the leader's retained WAL fetches the rest from the archive.
            recovery_conf: restoreCommand,
            // A new member restores the newest backup (no load on the leader), then streams;
            // with no backup yet, pgBackRest fails and Patroni takes a base backup instead.
            create_replica_methods: [PGBACKREST_METHOD, 'basebackup'],
            [PGBACKREST_METHOD]: { command: PGBACKREST_COMMANDS.createReplica, keep_data: true, no_params: true },
          }
        : { create_replica_methods: ['basebackup'] }),
      basebackup: [{ checkpoint: 'fast' }],
      // A member whose rewind failed is not re-cloned silently: see docs/postgres-runbook.md.
      remove_data_directory_on_rewind_failure: false,
      remove_data_directory_on_diverged_timelines: false,
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
  return `# Rendered by constructs/postgres/patroni-files.ts. Do not edit: change stacks/<env>.ts.\n${stringify(doc, { lineWidth: 0 })}`;
}

/** libpq TLS settings of a member's replication and rewind connections. */
function memberTls(tls: PatroniTlsInput | undefined): Record<string, string> {
  return tls ? { sslmode: 'verify-ca', sslrootcert: tls.caFile } : {};
}

const MiB = 2 ** 20;

/** The server sizes tuning derives from. */
export interface TuningInput {
  /** The container's memory request, in bytes. */
  readonly memoryBytes: number;
  /** The data volume's size, in bytes. */
  readonly storageBytes: number;
  readonly maxConnections: number;
}

/**
 * Server parameters: memory from the container's request (the pgtune rules of thumb), WAL
 * sizes from the volume, observability (pg_stat_statements), and planner settings for SSDs.
 */
export function postgresTuning(t: TuningInput): Record<string, string | number> {
  const totalMB = Math.floor(t.memoryBytes / MiB);
  if (!(totalMB >= 128)) {
    throw new Error(
      `'resources.requests.memory' (${totalMB}Mi) must be at least 128Mi: shared_buffers, work_mem and the WAL buffers are sized from it`,
    );
  }
  const storageMB = Math.floor(t.storageBytes / MiB);
  const sharedBuffersMB = Math.floor(totalMB / 4);
  return {
    shared_buffers: `${sharedBuffersMB}MB`,
    effective_cache_size: `${Math.floor((totalMB * 3) / 4)}MB`,
    maintenance_work_mem: `${Math.min(2048, Math.max(16, Math.floor(totalMB / 16)))}MB`,
    // What is left after shared_buffers, spread over every connection running ~3 sorts at once.
    work_mem: `${Math.max(1024, Math.floor(((totalMB - sharedBuffersMB) * 1024) / (t.maxConnections * 3)))}kB`,
    // Kubernetes gives /dev/shm 64Mi unless we mount more; mmap keeps parallel queries off it.
    dynamic_shared_memory_type: 'mmap',
    huge_pages: 'off',
    // A replica gone for good must not fill the leader's disk through its slot (a quarter of the volume).
    max_slot_wal_keep_size: `${Math.max(1024, Math.floor(storageMB / 4))}MB`,
    max_wal_size: `${Math.max(1024, Math.floor(storageMB / 10))}MB`,
    min_wal_size: '80MB',
    checkpoint_completion_target: 0.9,
    wal_compression: 'on',
    hot_standby_feedback: 'on',
    wal_receiver_status_interval: '1s',
    shared_preload_libraries: 'pg_stat_statements',
    'pg_stat_statements.max': 5000,
    'pg_stat_statements.track': 'top',
    track_io_timing: 'on',
    track_activity_query_size: 4096,
    log_destination: 'stderr',
    logging_collector: 'off',
    log_min_duration_statement: 1000,
    log_checkpoints: 'on',
    log_connections: 'off',
    log_lock_waits: 'on',
    log_temp_files: 0,
    log_line_prefix: '%m [%p] %q%u@%d ',
    max_parallel_workers_per_gather: 2,
    max_parallel_workers: 4,
    random_page_cost: 1.1,
    effective_io_concurrency: 200,
  };
}

/** Who may connect from where (pg_hba.conf lines, first match wins). */
export interface HbaInput {
  readonly database: string;
  readonly user: string;
  /** The migration role (DDL): admitted to the application's database like `user`. */
  readonly migrationUser: string;
  readonly superuser: string;
  readonly replicationUser: string;
  readonly rewindUser: string;
  /** Networks the members and clients connect from, IPv4 or IPv6 CIDRs (the NetworkPolicy narrows further). */
  readonly allowedCidrs: readonly string[];
  /** TLS is on: every TCP rule is `hostssl` (a plaintext connection matches none and hits the reject lines). @default false */
  readonly ssl?: boolean;
}

/** The address bits of an IPv4 or IPv6 address, most significant first. */
function addressBits(address: string): string {
  if (isIPv4(address)) {
    return address
      .split('.')
      .map((o) => Number(o).toString(2).padStart(8, '0'))
      .join('');
  }
  // IPv6: expand '::' and an embedded IPv4 tail (::ffff:10.0.0.1) into eight 16-bit groups.
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4) {
    const o = v4.split('.').map(Number);
    text = text.slice(0, -v4.length) + `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const missing = 8 - groups(head).length - groups(tail).length;
  const all =
    tail === undefined ? groups(head) : [...groups(head), ...Array<string>(missing).fill('0'), ...groups(tail)];
  return all.map((g) => parseInt(g, 16).toString(2).padStart(16, '0')).join('');
}

/**
 * Why `cidr` is not a network pg_hba.conf takes (`10.0.0.0/8`, `fd00::/8`), or undefined. PostgreSQL
 * wants the host bits zero; the fix names the network address the user most likely meant.
 */
export function cidrProblem(cidr: string): string | undefined {
  const example = 'such as 10.0.0.0/8, 100.64.0.0/10 or fd00::/8';
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return `must be an IPv4 or IPv6 CIDR (address/prefix length) ${example}`;
  const [, address, prefixText] = m;
  const v4 = isIPv4(address);
  if (!v4 && !isIPv6(address)) return `has no valid IPv4 or IPv6 address before '/': write a CIDR ${example}`;
  const max = v4 ? 32 : 128;
  const prefix = Number(prefixText);
  if (prefix > max) return `has a prefix length above ${max} (the most an ${v4 ? 'IPv4' : 'IPv6'} address has)`;
  const bits = addressBits(address);
  if (bits.slice(prefix).includes('1')) {
    const network = bits.slice(0, prefix).padEnd(max, '0');
    const shown = v4
      ? Array.from({ length: 4 }, (_, i) => parseInt(network.slice(i * 8, i * 8 + 8), 2)).join('.')
      : Array.from({ length: 8 }, (_, i) => parseInt(network.slice(i * 16, i * 16 + 16), 2).toString(16))
          .join(':')
          .replace(/(^|:)0(:0)+(:|$)/, '::');
    return `has host bits set after the /${prefix} prefix, which pg_hba.conf does not allow: write ${shown}/${prefix}`;
  }
  return undefined;
}

/** The first problem of an `allowedCidrs` list, with the index of the entry at fault (-1: the list itself). */
export function allowedCidrsProblem(cidrs: readonly string[]): { index: number; message: string } | undefined {
  if (cidrs.length === 0) {
    return {
      index: -1,
      message:
        "must name at least one network: the members replicate over it and clients connect from it (default: today's RFC 1918 ranges)",
    };
  }
  for (const [index, cidr] of cidrs.entries()) {
    const message = typeof cidr === 'string' ? cidrProblem(cidr) : 'must be a string';
    if (message) return { index, message };
  }
  return undefined;
}

/**
 * scram-sha-256 everywhere; the superuser over the socket (peer: Patroni and the post-bootstrap
 * script), loopback, or the network to its own and the application's database only (the roles Job);
 * replication and pg_rewind only for their roles; the application's runtime and migration roles only
 * to its database. Everything else is rejected.
 */
export function patroniHba(h: HbaInput): string[] {
  const problem = allowedCidrsProblem(h.allowedCidrs);
  if (problem) {
    const field = problem.index < 0 ? 'allowedCidrs' : `allowedCidrs[${problem.index}]`;
    const value = problem.index < 0 ? '[]' : h.allowedCidrs[problem.index];
    throw new Error(`'${field}' (${value}) ${problem.message}`);
  }
  const host = h.ssl ? 'hostssl' : 'host';
  return [
    `local all ${h.superuser} peer`,
    'local all all scram-sha-256',
    `${host} all all 127.0.0.0/8 scram-sha-256`,
    `${host} replication ${h.replicationUser} 127.0.0.0/8 scram-sha-256`,
    ...h.allowedCidrs.map((c) => `${host} replication ${h.replicationUser} ${c} scram-sha-256`),
    // pg_rewind reads the new leader's files through these functions (Patroni grants them).
    ...h.allowedCidrs.map((c) => `${host} postgres ${h.rewindUser} ${c} scram-sha-256`),
    ...h.allowedCidrs.map((c) => `${host} ${h.database} ${h.user} ${c} scram-sha-256`),
    ...h.allowedCidrs.map((c) => `${host} ${h.database} ${h.migrationUser} ${c} scram-sha-256`),
    // The roles Job (roles-job.ts): the superuser's password is in the credentials Secret only.
    ...h.allowedCidrs.map((c) => `${host} postgres,${h.database} ${h.superuser} ${c} scram-sha-256`),
    'host all all 0.0.0.0/0 reject',
    'host all all ::/0 reject',
  ];
}

/** Every file of the `postgres-files` ConfigMap. */
export function patroniConfigFiles(i: PatroniFilesInput, postBootstrapScript: string): Record<string, string> {
  // pgBackRest's files (pgbackrest-files.ts) join these in the construct when backups are on.
  return { [PATRONI_FILES.patroni]: renderPatroniYml(i), [PATRONI_FILES.postBootstrap]: postBootstrapScript };
}

/** What post-bootstrap.sh does besides the roles (roles.sh). */
export interface PostBootstrapInput {
  /** The metrics exporter's role (granted the backup-status function). */
  readonly exporterUser: string;
  /** pgBackRest is on: create the stanza and the backup-status function the exporter reads. @default false */
  readonly backup?: boolean;
}

/**
 * post_bootstrap: the roles, the database, ownership and grants (roles.sh, next to it in the
 * ConfigMap: the same script the roles Job runs on a running cluster), then pgBackRest's stanza and
 * the exporter's backup-status function. Patroni runs it once, on the member that initialises the
 * cluster, with a superuser connection string as `$1`; it has already created the superuser,
 * replication and rewind roles. Safe to run again.
 */
export function postBootstrapScript(i: PostBootstrapInput): string {
  const backupPart = i.backup
    ? `# pgBackRest: the stanza (idempotent; a repository not answering yet must not fail the bootstrap:
# the first backup creates it too) and the function the exporter reports backups with.
pgbackrest stanza-create || echo "post-bootstrap: pgbackrest stanza-create failed; the first backup will retry" >&2
psql -X -q -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
${BACKUP_STATUS_SQL}GRANT EXECUTE ON FUNCTION public.pgbackrest_backup_status() TO ${i.exporterUser};
SQL
`
    : '';
  return `#!/bin/sh
# Rendered by constructs/postgres/patroni-files.ts: run by Patroni after initdb (post_bootstrap).
set -eu
: "\${1:?Patroni passes a superuser connection string}"
sh "$(dirname "$0")/${PATRONI_FILES.roles}" "$1"
${backupPart}`;
}
