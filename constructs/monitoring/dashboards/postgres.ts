/** PostgreSQL: replication, connections, buffer cache hit ratio, long-running transactions; Patroni and PgBouncer. */
import { SERVICE_METRICS } from '../../../service/src/contract';
import type { MonitoredPlatform } from '../monitored';
import { hitRatio } from '../alert-rules';
import { patroniPanels, pgbouncerPanels } from '../../postgres/patroni-panels';
import { backupPanels } from '../../postgres/backup-alerts';
import { dashboard, type Dashboard, stat, timeseries } from './panels';

export function postgresDashboard(config: MonitoredPlatform): Dashboard {
  return dashboard('fastnext-postgres', 'FastNext / PostgreSQL', [
    timeseries('Replica lag (seconds, measured by the API)', 's', {
      '{{replica}}': `max by (replica) (${SERVICE_METRICS.replicaLagSeconds})`,
    }),
    timeseries('Replica lag (bytes of WAL, from pg_stat_replication)', 'bytes', {
      '{{application_name}}': 'max by (application_name) (pg_stat_replication_pg_wal_lsn_diff)',
    }),
    stat(
      'Streaming replicas',
      'short',
      { streaming: 'count(pg_stat_replication_pg_wal_lsn_diff{state="streaming"}) or vector(0)' },
      { description: `Expected: ${config.postgres.replicas}.` },
    ),
    timeseries(
      'Connections / max_connections',
      'percentunit',
      { '{{pod}}': 'sum by (pod) (pg_stat_activity_count) / on (pod) max by (pod) (pg_settings_max_connections)' },
      { min: 0, max: 1 },
    ),
    timeseries('Connections by state', 'short', {
      '{{pod}} {{state}}': 'sum by (pod, state) (pg_stat_activity_count)',
    }),
    timeseries(
      'Buffer cache hit ratio',
      'percentunit',
      { '{{pod}}': hitRatio('pg_stat_database_blks_hit', 'pg_stat_database_blks_read', 'pod') },
      { min: 0, max: 1 },
    ),
    timeseries(
      'Slow statements: longest running transaction',
      's',
      { '{{pod}} {{datname}}': 'max by (pod, datname) (pg_stat_activity_max_tx_duration)' },
      {
        description:
          "The exporter's default metrics have no per-statement timing (pg_stat_statements needs a custom query); " +
          'the longest open transaction per database shows the slow ones.',
      },
    ),
    timeseries('Transactions per second', 'ops', {
      '{{pod}} commit': 'sum by (pod) (rate(pg_stat_database_xact_commit[5m]))',
      '{{pod}} rollback': 'sum by (pod) (rate(pg_stat_database_xact_rollback[5m]))',
    }),
    timeseries('Deadlocks and temp files', 'short', {
      '{{pod}} deadlocks': 'sum by (pod) (increase(pg_stat_database_deadlocks[5m]))',
      '{{pod}} temp files': 'sum by (pod) (increase(pg_stat_database_temp_files[5m]))',
    }),
    timeseries('Database size', 'bytes', { '{{datname}}': 'max by (datname) (pg_database_size_bytes)' }),
    ...patroniPanels(1 + config.postgres.replicas),
    ...pgbouncerPanels(),
    ...backupPanels(config.postgres.backup),
  ]);
}
