/**
 * Alert rules of the PgBouncer pools. Every metric is in pgbouncer_exporter 0.10.2 (the
 * shipped sidecar's version; proven by test/metrics-existence.test.ts). The admin database
 * `pgbouncer` is left out of every expression.
 */
import { type AlertRule, alertRule } from '../monitoring/rule';

const POOLED = 'database!="pgbouncer"';

export function pgbouncerAlertRules(): AlertRule[] {
  return [
    alertRule(
      'PgBouncerClientsWaiting',
      // Clients that sent a query and got no server connection yet, for a while: the pool is saturated.
      `max by (pod, database) (pgbouncer_pools_client_maxwait_seconds{${POOLED}}) > 1`,
      '2m',
      'page',
      'PgBouncer clients wait more than 1 s for a server connection',
      'The longest wait on {{ $labels.pod }} is {{ $value | humanizeDuration }}: raise pgbouncer.poolSize within the connection budget, or find the slow transactions (docs/postgres-runbook.md#pgbouncer).',
    ),
    alertRule(
      'PgBouncerPoolSaturated',
      `sum by (pod, database) (pgbouncer_pools_server_active_connections{${POOLED}}) / on (pod, database) max by (pod, database) (pgbouncer_databases_pool_size{${POOLED}}) >= 0.9`,
      '10m',
      'ticket',
      'A PgBouncer pool runs at 90 % of its server connections',
      '{{ $labels.pod }} uses {{ $value | humanizePercentage }} of its pool for {{ $labels.database }} (docs/postgres-runbook.md#pgbouncer).',
    ),
    alertRule(
      'PgBouncerServerLoginFailing',
      // Server connections stuck logging in: PostgreSQL refuses or is unreachable (no leader, bad password).
      `max by (pod) (pgbouncer_pools_server_login_connections{${POOLED}}) > 0`,
      '2m',
      'page',
      'PgBouncer cannot log in to PostgreSQL',
      '{{ $labels.pod }} has had server connections stuck in login for 2 minutes (docs/postgres-runbook.md#pgbouncer).',
    ),
    alertRule(
      'PgBouncerDown',
      'pgbouncer_up == 0',
      '2m',
      'page',
      'The pgbouncer exporter cannot reach PgBouncer',
      'PgBouncer on {{ $labels.pod }} does not answer its admin console (docs/postgres-runbook.md#pgbouncer).',
    ),
  ];
}
