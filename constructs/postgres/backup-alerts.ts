/**
 * Alert rules and dashboard panels of the backups (group `fastnext-backup`, its own group so
 * it merges apart from the tier rules). Metrics: postgres_exporter's `pg_stat_archiver_*`
 * and the shipped extra queries (pgbackrest-files.ts `exporterQueries`: pgBackRest's info
 * through the leader, the leader's WAL position), proven to exist by
 * test/metrics-existence.test.ts and test/backup.test.ts. Runbook: docs/backup-restore.md.
 */
import { type PanelSpec, timeseries } from '../monitoring/dashboards/panels';
import { type AlertRule, alertRule } from '../monitoring/rule';
import { BACKUP_DEFAULTS, backupEnabled, type BackupProps, scheduleIntervalSeconds } from './backup-settings';
import { BACKUP_METRICS } from './pgbackrest-files';

/** The backup settings the rules read. */
export type MonitoredBackup = Pick<BackupProps, 'enabled' | 'repository' | 'schedule' | 'archiveTimeoutSeconds'>;

const M = BACKUP_METRICS;
const hours = (s: number) => `${+(s / 3600).toFixed(1)} h`;

/** The rules, or none when backups are off. */
export function backupAlertRules(backup: MonitoredBackup | undefined): AlertRule[] {
  if (!backup || !backupEnabled(backup)) return [];
  const schedule = { ...BACKUP_DEFAULTS.schedule, ...backup.schedule };
  const fullMax = Math.round(1.5 * scheduleIntervalSeconds(schedule.full));
  const anyMax = Math.round(1.5 * scheduleIntervalSeconds(schedule.differential));
  const timeout = backup.archiveTimeoutSeconds ?? BACKUP_DEFAULTS.archiveTimeoutSeconds;
  // A WAL segment is due every archive_timeout while there are writes; allow a few, and 10 minutes at least.
  const staleSeconds = Math.max(600, 5 * timeout);
  const age = (types: string) => `time() - max(${M.lastCompletion}{type=~"${types}"})`;
  return [
    alertRule(
      'PostgresFullBackupTooOld',
      // No leader reporting at all (exporter or function missing) counts as too old too.
      `${age('full')} > ${fullMax} or absent(${M.lastCompletion}{type="full"})`,
      '30m',
      'page',
      `The newest full backup is older than 1.5x its schedule (${hours(fullMax)})`,
      `The last full backup finished {{ $value | humanizeDuration }} ago; the schedule '${schedule.full}' should run every ${hours(fullMax / 1.5)}. See docs/backup-restore.md#backup-too-old.`,
    ),
    alertRule(
      'PostgresBackupTooOld',
      // A full counts as a newer differential.
      `${age('full|diff')} > ${anyMax}`,
      '30m',
      'ticket',
      `No backup (full or differential) for more than 1.5x the differential schedule (${hours(anyMax)})`,
      `The last backup finished {{ $value | humanizeDuration }} ago (schedule '${schedule.differential}'). See docs/backup-restore.md#backup-too-old.`,
    ),
    alertRule(
      'PostgresWalArchivingFailing',
      // The archiver retries a failing segment about once a minute: the count keeps rising.
      'increase(pg_stat_archiver_failed_count[10m]) > 0 and on (pod) max by (pod) (pg_wal_archive_position_bytes) >= 0',
      '10m',
      'page',
      'WAL archiving is failing on the leader',
      'archive_command fails on {{ $labels.pod }}: WAL piles up in pg_wal and point-in-time recovery stops at the last archived segment. See docs/backup-restore.md#wal-archiving-failing.',
    ),
    alertRule(
      'PostgresWalArchiveStale',
      // The leader wrote WAL but archived nothing for a while (an idle leader archives nothing and is fine).
      `pg_stat_archiver_last_archive_age > ${staleSeconds} and on (pod) delta(${M.walPosition}[10m]) > 0`,
      '10m',
      'page',
      `The leader has archived no WAL for ${Math.round(staleSeconds / 60)} minutes while writing`,
      `{{ $labels.pod }} last archived a segment {{ $value | humanizeDuration }} ago (archive_timeout ${timeout} s): the data written since would be lost with its volume. See docs/backup-restore.md#wal-archiving-failing.`,
    ),
    alertRule(
      'PostgresBackupRepositoryUnreachable',
      // 0 ok, 2 no backup yet: anything else is a repository pgBackRest cannot read or a broken stanza.
      `max by (pod) (${M.repoStatus}) != 0 and max by (pod) (${M.repoStatus}) != 2`,
      '15m',
      'page',
      'pgBackRest cannot read the backup repository',
      'pgbackrest info on {{ $labels.pod }} reports status {{ $value }} (99: no answer): backups and archiving into it fail. See docs/backup-restore.md#repository-unreachable.',
    ),
  ];
}

/** Panels of the PostgreSQL dashboard's backup row. */
export function backupPanels(backup: MonitoredBackup | undefined): PanelSpec[] {
  if (!backup || !backupEnabled(backup)) return [];
  return [
    timeseries(
      'Backups: age of the newest full and differential backup',
      's',
      {
        full: `time() - max(${M.lastCompletion}{type="full"})`,
        differential: `time() - max(${M.lastCompletion}{type="diff"})`,
      },
      { description: 'From pgbackrest info on the leader (refreshed every 2 minutes).' },
    ),
    timeseries('WAL archiving: seconds since the last archived segment, failures per minute', 'short', {
      '{{pod}} age (s)': `max by (pod) (pg_stat_archiver_last_archive_age and on (pod) ${M.walPosition})`,
      '{{pod}} failed/min': 'sum by (pod) (rate(pg_stat_archiver_failed_count[5m])) * 60',
    }),
  ];
}
