/**
 * Dashboard panels of the Patroni tier and the PgBouncer pools (on the PostgreSQL
 * dashboard). Metrics: Patroni's REST /metrics and pgbouncer_exporter 0.10.2, proven to
 * exist by test/metrics-existence.test.ts.
 */
import { type PanelSpec, stat, timeseries } from '../monitoring/dashboards/panels';

const POOLED = 'database!="pgbouncer"';

export function patroniPanels(members: number): PanelSpec[] {
  return [
    stat(
      'Patroni: role per member (1 = leader)',
      'short',
      { '{{pod}}': 'max by (pod) (patroni_master)' },
      { description: `Exactly one leader of ${members} members; 0 everywhere means no leader (writes fail).` },
    ),
    timeseries('Patroni: timeline (a step is a promotion)', 'short', {
      '{{pod}}': 'max by (pod) (patroni_postgres_timeline)',
    }),
    timeseries('Patroni: members running PostgreSQL, synchronous standbys', 'short', {
      running: 'sum(patroni_postgres_running)',
      'sync standby': 'sum(patroni_sync_standby)',
    }),
    timeseries(
      'Patroni: replica replay behind the leader (bytes of WAL)',
      'bytes',
      { '{{pod}}': 'scalar(max(patroni_xlog_location)) - max by (pod) (patroni_xlog_replayed_location)' },
      { description: "Leader's WAL position minus each replica's replayed position (Patroni has no lag metric)." },
    ),
  ];
}

export function pgbouncerPanels(): PanelSpec[] {
  return [
    timeseries('PgBouncer: longest client wait for a server connection', 's', {
      '{{pod}}': `max by (pod) (pgbouncer_pools_client_maxwait_seconds{${POOLED}})`,
    }),
    timeseries('PgBouncer: average wait per transaction', 's', {
      '{{pod}}': `sum by (pod) (rate(pgbouncer_stats_client_wait_seconds_total{${POOLED}}[5m])) / sum by (pod) (rate(pgbouncer_stats_sql_transactions_pooled_total{${POOLED}}[5m]))`,
    }),
    timeseries(
      'PgBouncer: pool saturation (active server connections / pool size)',
      'percentunit',
      {
        '{{pod}}': `sum by (pod) (pgbouncer_pools_server_active_connections{${POOLED}}) / on (pod) max by (pod) (pgbouncer_databases_pool_size{${POOLED}})`,
      },
      { min: 0, max: 1 },
    ),
    timeseries(
      'PgBouncer: clients active / waiting, servers logging in',
      'short',
      {
        '{{pod}} active': `sum by (pod) (pgbouncer_pools_client_active_connections{${POOLED}})`,
        '{{pod}} waiting': `sum by (pod) (pgbouncer_pools_client_waiting_connections{${POOLED}})`,
        '{{pod}} login': `sum by (pod) (pgbouncer_pools_server_login_connections{${POOLED}})`,
      },
      {
        description: 'Servers stuck logging in mean PostgreSQL refuses or cannot be reached (no leader, bad password).',
      },
    ),
  ];
}
