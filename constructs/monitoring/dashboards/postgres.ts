/** PostgreSQL: replication, connections, buffer cache hit ratio, long-running transactions; Patroni and PgBouncer. */
import { SERVICE_METRICS } from '../../../service/src/contract';
import type { MonitoredPlatform } from '../monitored';
import { hitRatio } from '../alert-rules';
import { patroniPanels, pgbouncerPanels } from '../../postgres/patroni-panels';
import { backupPanels } from '../../postgres/backup-alerts';
import { dashboard, type Dashboard } from './panels';

export function postgresDashboard(config: MonitoredPlatform): Dashboard {
  return dashboard('fastnext-postgres', 'FastNext / PostgreSQL', [
    {
      title: 'Replica lag (seconds, measured by the API)',
      unit: 's',
      targets: [{ expr: `max by (replica) (${SERVICE_METRICS.replicaLagSeconds})`, legendFormat: '{{replica}}' }],
    },
    {
      title: 'Replica lag (bytes of WAL, from pg_stat_replication)',
      unit: 'bytes',
      targets: [
        {
          expr: 'max by (application_name) (pg_stat_replication_pg_wal_lsn_diff)',
          legendFormat: '{{application_name}}',
        },
      ],
    },
    {
      title: 'Streaming replicas',
      type: 'stat',
      unit: 'short',
      description: `Expected: ${config.postgres.replicas}.`,
      targets: [
        {
          expr: 'count(pg_stat_replication_pg_wal_lsn_diff{state="streaming"}) or vector(0)',
          legendFormat: 'streaming',
        },
      ],
    },
    {
      title: 'Connections / max_connections',
      unit: 'percentunit',
      min: 0,
      max: 1,
      targets: [
        {
          expr: 'sum by (pod) (pg_stat_activity_count) / on (pod) max by (pod) (pg_settings_max_connections)',
          legendFormat: '{{pod}}',
        },
      ],
    },
    {
      title: 'Connections by state',
      unit: 'short',
      targets: [{ expr: 'sum by (pod, state) (pg_stat_activity_count)', legendFormat: '{{pod}} {{state}}' }],
    },
    {
      title: 'Buffer cache hit ratio',
      unit: 'percentunit',
      min: 0,
      max: 1,
      targets: [
        {
          expr: hitRatio('pg_stat_database_blks_hit', 'pg_stat_database_blks_read', 'pod'),
          legendFormat: '{{pod}}',
        },
      ],
    },
    {
      title: 'Slow statements: longest running transaction',
      unit: 's',
      description:
        "The exporter's default metrics have no per-statement timing (pg_stat_statements needs a custom query); " +
        'the longest open transaction per database shows the slow ones.',
      targets: [
        { expr: 'max by (pod, datname) (pg_stat_activity_max_tx_duration)', legendFormat: '{{pod}} {{datname}}' },
      ],
    },
    {
      title: 'Transactions per second',
      unit: 'ops',
      targets: [
        { expr: 'sum by (pod) (rate(pg_stat_database_xact_commit[5m]))', legendFormat: '{{pod}} commit' },
        { expr: 'sum by (pod) (rate(pg_stat_database_xact_rollback[5m]))', legendFormat: '{{pod}} rollback' },
      ],
    },
    {
      title: 'Deadlocks and temp files',
      unit: 'short',
      targets: [
        { expr: 'sum by (pod) (increase(pg_stat_database_deadlocks[5m]))', legendFormat: '{{pod}} deadlocks' },
        { expr: 'sum by (pod) (increase(pg_stat_database_temp_files[5m]))', legendFormat: '{{pod}} temp files' },
      ],
    },
    {
      title: 'Database size',
      unit: 'bytes',
      targets: [{ expr: 'max by (datname) (pg_database_size_bytes)', legendFormat: '{{datname}}' }],
    },
    ...patroniPanels(1 + config.postgres.replicas),
    ...pgbouncerPanels(),
    ...backupPanels(config.postgres.backup),
  ]);
}
