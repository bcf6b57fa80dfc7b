/**
 * pgBackRest's files in the `postgres-files` ConfigMap: pgbackrest.conf (the repository,
 * retention, encryption, the member's data directory), backup.sh (what the backup CronJobs
 * run on the leader), restore.sh (Patroni's bootstrap method for `restore.fromBackup`) and
 * the postgres_exporter queries that report the repository's state.
 *
 * Pure: functions of their inputs only. The launcher runs these same bytes on loopback
 * (tools/runtime/launcher/pgbackrest.ts), where only the repository (a local posix
 * directory stands in for a bucket) and the member's paths are swapped.
 *
 * Every pgbackrest command finds its config through PGBACKREST_CONFIG and its stanza through
 * PGBACKREST_STANZA (the container's env, inherited by PostgreSQL's archiver, by Patroni's
 * replica and bootstrap commands and by `kubectl exec`), so no command line names a path.
 */
import { stringify } from 'yaml';
import { BACKUP_SECRET_KEYS, type RepositoryType } from './backup-settings';

/** File names pgBackRest adds to the `postgres-files` ConfigMap. */
export const PGBACKREST_FILES = {
  conf: 'pgbackrest.conf',
  backup: 'backup.sh',
  restore: 'restore.sh',
  exporterQueries: 'exporter-queries.yaml',
} as const;

/** Environment variables pgBackRest reads its options from (`PGBACKREST_<OPTION>`). */
export const PGBACKREST_ENV = {
  config: 'PGBACKREST_CONFIG',
  stanza: 'PGBACKREST_STANZA',
  s3Key: 'PGBACKREST_REPO1_S3_KEY',
  s3KeySecret: 'PGBACKREST_REPO1_S3_KEY_SECRET',
  azureAccount: 'PGBACKREST_REPO1_AZURE_ACCOUNT',
  azureKey: 'PGBACKREST_REPO1_AZURE_KEY',
  cipherPass: 'PGBACKREST_REPO1_CIPHER_PASS',
} as const;

/** pgBackRest's exit code when another process holds the stanza's lock (LockAcquireError). */
export const PGBACKREST_LOCK_HELD = 50;

/** The repository as rendered: defaults applied. */
export interface ResolvedRepository {
  readonly type: RepositoryType;
  readonly path: string;
  readonly bucket?: string;
  readonly container?: string;
  readonly endpoint?: string;
  readonly region?: string;
  readonly pathStyle?: boolean;
  /** gcs: the mounted service-account key file; absent: the pod's Workload Identity. */
  readonly gcsKeyFile?: string;
}

export interface PgBackRestConfInput {
  readonly repository: ResolvedRepository;
  readonly retentionFull: number;
  readonly encrypted: boolean;
  readonly stanza: string;
  readonly dataDir: string;
  readonly port: number;
  readonly socketDir: string;
  readonly superuser: string;
  /** Where pgBackRest keeps its lock files (a writable tmpfs): two backups on one member cannot both hold it. */
  readonly lockPath: string;
}

function hostAndPort(endpoint: string): [string, number | undefined] {
  const [host, port] = endpoint.split(':');
  return [host, port === undefined ? undefined : Number(port)];
}

/** The repository's `repo1-*` lines (also what the twin replaces). */
export function repositoryOptions(r: ResolvedRepository): Record<string, string | number> {
  const o: Record<string, string | number> = { 'repo1-type': r.type, 'repo1-path': r.path };
  const endpoint = r.endpoint ? hostAndPort(r.endpoint) : undefined;
  if (r.type === 's3') {
    o['repo1-s3-bucket'] = r.bucket!;
    o['repo1-s3-region'] = r.region!;
    o['repo1-s3-endpoint'] = endpoint?.[0] ?? `s3.${r.region}.amazonaws.com`;
    if (r.pathStyle) o['repo1-s3-uri-style'] = 'path';
    // Keys from PGBACKREST_REPO1_S3_KEY / _KEY_SECRET (the credentials Secret).
    o['repo1-s3-key-type'] = 'shared';
  } else if (r.type === 'gcs') {
    o['repo1-gcs-bucket'] = r.bucket!;
    if (endpoint) o['repo1-gcs-endpoint'] = endpoint[0];
    if (r.gcsKeyFile) o['repo1-gcs-key'] = r.gcsKeyFile;
    else o['repo1-gcs-key-type'] = 'auto';
  } else if (r.type === 'azure') {
    o['repo1-azure-container'] = r.container!;
    if (endpoint) o['repo1-azure-endpoint'] = endpoint[0];
  }
  if (endpoint?.[1] !== undefined) o['repo1-storage-port'] = endpoint[1];
  return o;
}

/** pgbackrest.conf: one stanza (the Patroni scope) whose pg1 is the member itself. */
export function renderPgBackRestConf(i: PgBackRestConfInput): string {
  const global: Record<string, string | number> = {
    ...repositoryOptions(i.repository),
    // Expiry counts full backups; the differentials and WAL that depend on an expired full go with it.
    'repo1-retention-full-type': 'count',
    'repo1-retention-full': i.retentionFull,
    ...(i.encrypted ? { 'repo1-cipher-type': 'aes-256-cbc' } : {}),
    // lz4: a 1 GB full backup in ~11 s instead of ~72 s with gz (measured, bench/backup-results.md).
    'compress-type': 'lz4',
    'process-max': 2,
    // Checkpoint at once rather than waiting for the next one (a backup starts within seconds).
    'start-fast': 'y',
    'lock-path': i.lockPath,
    // Containers log to stdout; the read-only root filesystem has no log directory.
    'log-level-console': 'info',
    'log-level-file': 'off',
  };
  const stanza: Record<string, string | number> = {
    'pg1-path': i.dataDir,
    'pg1-port': i.port,
    'pg1-socket-path': i.socketDir,
    'pg1-user': i.superuser,
  };
  const section = (name: string, o: Record<string, string | number>) =>
    `[${name}]\n${Object.entries(o)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n')}\n`;
  return `# Rendered by constructs/postgres/pgbackrest-files.ts. Do not edit: change stacks/<env>.ts.\n# Credentials and the cipher pass come from PGBACKREST_* environment variables (Secrets).\n${section('global', global)}\n${section(i.stanza, stanza)}`;
}

/**
 * backup.sh <full|diff|incr>: run on the leader by the backup CronJobs. stanza-create is
 * idempotent (creates the stanza on the first run, checks it afterwards); pgBackRest refuses
 * to back up a standby, so a failover between the CronJob's lookup and the exec backs up
 * nothing and fails the Job (which retries). A backup already running on this member (the
 * other CronJob) holds the stanza's lock: this one is skipped, reported, and exits 0.
 */
export function backupScript(): string {
  return `#!/bin/sh
# Rendered by constructs/postgres/pgbackrest-files.ts: the backup CronJobs run it on the leader
# (kubectl exec svc/<cluster>-primary -c patroni -- sh <config dir>/${PGBACKREST_FILES.backup} <type>).
set -u
type="\${1:-}"
case "$type" in
  full | diff | incr) ;;
  *) echo "backup.sh: backup type '$type' is not full, diff or incr" >&2; exit 2 ;;
esac
: "\${${PGBACKREST_ENV.config}:?set by the pod spec}" "\${${PGBACKREST_ENV.stanza}:?set by the pod spec}"
run() {
  pgbackrest "$@"
  rc=$?
  if [ "$rc" -eq ${PGBACKREST_LOCK_HELD} ]; then
    echo "backup.sh: another backup holds the stanza's lock on this member; this $type backup is skipped" >&2
    exit 0
  fi
  [ "$rc" -eq 0 ] || { echo "backup.sh: pgbackrest $1 failed with exit code $rc" >&2; exit "$rc"; }
}
run stanza-create
run --type="$type" backup
# What the repository holds now (the Job's log keeps it).
pgbackrest info
`;
}

/**
 * restore.sh: Patroni's custom bootstrap command for `restore.fromBackup`. It runs only when
 * Patroni bootstraps a cluster (no initialize key in the DCS, an empty data directory), and
 * refuses to run over a data directory that holds anything: a restore only fills new volumes.
 */
export function restoreScript(targetTime: string | undefined): string {
  const target = targetTime ? ` --type=time "--target=${targetTime}" --target-action=promote` : '';
  return `#!/bin/sh
# Rendered by constructs/postgres/pgbackrest-files.ts: Patroni's bootstrap method (postgres.restore).
set -eu
: "\${${PGBACKREST_ENV.config}:?set by the pod spec}" "\${${PGBACKREST_ENV.stanza}:?set by the pod spec}"
data="$(sed -n 's/^pg1-path=//p' "$${PGBACKREST_ENV.config}")"
if [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
  echo "restore.sh: refusing to restore into $data: it is not empty (a restore only fills new volumes)" >&2
  exit 1
fi
# --type=time picks the newest backup that ends before the target; PostgreSQL then replays
# archived WAL up to it (Patroni writes the recovery settings: bootstrap.pgbackrest.recovery_conf).
pgbackrest restore${target}
`;
}

/** archive_command / restore_command / replica creation, with the env naming config and stanza. */
export const PGBACKREST_COMMANDS = {
  archivePush: 'pgbackrest archive-push "%p"',
  archiveGet: 'pgbackrest archive-get %f "%p"',
  createReplica: 'pgbackrest --delta restore',
} as const;

/** SQL (run by post-bootstrap.sh on the leader's `postgres` database) behind the exporter's backup metrics. */
export const BACKUP_STATUS_SQL = `-- pgBackRest's own monitoring recipe: its JSON info through COPY FROM PROGRAM (superuser only).
CREATE OR REPLACE FUNCTION public.pgbackrest_backup_status(
  OUT type text, OUT last_completion_timestamp_seconds float8, OUT sets int, OUT repo_status_code int)
RETURNS SETOF record LANGUAGE plpgsql
-- The exporter's role has pg_monitor, not superuser: it runs this fixed command with its owner's rights.
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  info jsonb;
  kind text;
BEGIN
  -- A standby cannot write the temp table COPY needs: the leader's exporter reports for the cluster.
  IF pg_is_in_recovery() THEN
    RETURN;
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS pgbackrest_info_output (line text);
  TRUNCATE pgbackrest_info_output;
  BEGIN
    -- CSV with quote and delimiter bytes that never occur: each output line arrives verbatim.
    COPY pgbackrest_info_output FROM PROGRAM 'pgbackrest --output=json info'
      WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
    SELECT string_agg(line, E'\\n')::jsonb -> 0 INTO info FROM pgbackrest_info_output;
  EXCEPTION WHEN OTHERS THEN
    info := NULL;
  END;
  -- 99 = pgBackRest's "other error": no answer at all (repository unreachable, bad credentials).
  repo_status_code := COALESCE((info #>> '{status,code}')::int, 99);
  FOREACH kind IN ARRAY ARRAY['full', 'diff', 'incr'] LOOP
    type := kind;
    -- No answer: NULL (NaN), so "too old" stays quiet and the repository alert speaks.
    SELECT CASE WHEN info IS NULL THEN NULL ELSE COALESCE(max((b #>> '{timestamp,stop}')::float8), 0) END,
           count(b)::int
      INTO last_completion_timestamp_seconds, sets
      FROM jsonb_array_elements(COALESCE(info -> 'backup', '[]'::jsonb)) b
     WHERE b ->> 'type' = kind;
    RETURN NEXT;
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION public.pgbackrest_backup_status() FROM PUBLIC;
`;

/** Metric names the exporter queries produce (proven by test/metrics-existence.test.ts). */
export const BACKUP_METRICS = {
  lastCompletion: 'pgbackrest_backup_last_completion_timestamp_seconds',
  sets: 'pgbackrest_backup_sets',
  repoStatus: 'pgbackrest_backup_repo_status_code',
  walPosition: 'pg_wal_archive_position_bytes',
} as const;

/** postgres_exporter's extra queries (`--extend.query-path`): backups from pgBackRest, the WAL position. */
export function exporterQueries(cacheSeconds = 120): string {
  const doc = {
    pgbackrest_backup: {
      query:
        'SELECT type, last_completion_timestamp_seconds, sets, repo_status_code FROM public.pgbackrest_backup_status()',
      // pgbackrest info reads the repository (API calls on a bucket): not on every scrape.
      cache_seconds: cacheSeconds,
      metrics: [
        { type: { usage: 'LABEL', description: 'Backup type: full, diff or incr' } },
        {
          last_completion_timestamp_seconds: {
            usage: 'GAUGE',
            description: 'When the newest backup of this type finished (0: none in the repository)',
          },
        },
        { sets: { usage: 'GAUGE', description: 'Backups of this type in the repository' } },
        {
          repo_status_code: {
            usage: 'GAUGE',
            description: "pgBackRest's stanza status: 0 ok, 2 no backup yet, 99 repository not answering, else broken",
          },
        },
      ],
    },
    pg_wal_archive: {
      // Only the leader writes WAL (pg_current_wal_lsn() fails on a standby).
      query: "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS position_bytes WHERE NOT pg_is_in_recovery()",
      metrics: [{ position_bytes: { usage: 'GAUGE', description: "The leader's WAL write position (bytes)" } }],
    },
  };
  return `# Rendered by constructs/postgres/pgbackrest-files.ts.\n${stringify(doc, { lineWidth: 0 })}`;
}

/** Where the gcs key file is mounted when the credentials Secret holds one. */
export const GCS_KEY_DIR = '/etc/pgbackrest-gcs';
export const GCS_KEY_FILE = `${GCS_KEY_DIR}/${BACKUP_SECRET_KEYS.gcs.serviceAccount}`;
