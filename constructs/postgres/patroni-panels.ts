/**
 * Dashboard panels of the Patroni tier and the PgBouncer pools (on the PostgreSQL
 * dashboard). Metrics: Patroni's REST /metrics and pgbouncer_exporter 0.10.2, proven to
 * exist by test/metrics-existence.test.ts.
 */
import type { PanelSpec } from '../monitoring/dashboards/panels';

const POOLED = 'database!="pgbouncer"';

export function patroniPanels(members: number): PanelSpec[] {
  return [
    {
      title: 'Patroni: role per member (1 = leader)',
      type: 'stat',
      unit: 'short',
      description: `Exactly one leader of ${members} members; 0 everywhere means no leader (writes fail).`,
      targets: [{ expr: 'max by (pod) (patroni_master)', legendFormat: '{{pod}}' }],
    },
    {
      title: 'Patroni: timeline (a step is a promotion)',
      unit: 'short',
      targets: [{ expr: 'max by (pod) (patroni_postgres_timeline)', legendFormat: '{{pod}}' }],
    },
    {
      title: 'Patroni: members running PostgreSQL, synchronous standbys',
      unit: 'short',
      targets: [
        { expr: 'sum(patroni_postgres_running)', legendFormat: 'running' },
        { expr: 'sum(patroni_sync_standby)', legendFormat: 'sync standby' },
      ],
    },
    {
      title: 'Patroni: replica replay behind the leader (bytes of WAL)',
      unit: 'bytes',
      description: "Leader's WAL position minus each replica's replayed position (Patroni has no lag metric).",
      targets: [
        {
          expr: 'scalar(max(patroni_xlog_location)) - max by (pod) (patroni_xlog_replayed_location)',
          legendFormat: '{{pod}}',
        },
      ],
    },
  ];
}

export function pgbouncerPanels(): PanelSpec[] {
  return [
    {
      title: 'PgBouncer: longest client wait for a server connection',
      unit: 's',
      targets: [{ expr: `max by (pod) (pgbouncer_pools_client_maxwait_seconds{${POOLED}})`, legendFormat: '{{pod}}' }],
    },
    {
      title: 'PgBouncer: average wait per transaction',
      unit: 's',
      targets: [
        {
          expr: `sum by (pod) (rate(pgbouncer_stats_client_wait_seconds_total{${POOLED}}[5m])) / sum by (pod) (rate(pgbouncer_stats_sql_transactions_pooled_total{${POOLED}}[5m]))`,
          legendFormat: '{{pod}}',
        },
      ],
    },
    {
      title: 'PgBouncer: pool saturation (active server connections / pool size)',
      unit: 'percentunit',
      min: 0,
      max: 1,
      targets: [
        {
          expr: `sum by (pod) (pgbouncer_pools_server_active_connections{${POOLED}}) / on (pod) max by (pod) (pgbouncer_databases_pool_size{${POOLED}})`,
          legendFormat: '{{pod}}',
        },
      ],
    },
    {
      title: 'PgBouncer: clients active / waiting, servers logging in',
      unit: 'short',
      description: 'Servers stuck logging in mean PostgreSQL refuses or cannot be reached (no leader, bad password).',
      targets: [
        { expr: `sum by (pod) (pgbouncer_pools_client_active_connections{${POOLED}})`, legendFormat: '{{pod}} active' },
        {
          expr: `sum by (pod) (pgbouncer_pools_client_waiting_connections{${POOLED}})`,
          legendFormat: '{{pod}} waiting',
        },
        { expr: `sum by (pod) (pgbouncer_pools_server_login_connections{${POOLED}})`, legendFormat: '{{pod}} login' },
      ],
    },
  ];
}
