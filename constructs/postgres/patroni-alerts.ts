/**
 * Alert rules of the Patroni tier. Every metric is in Patroni 3.0.2's REST `/metrics`
 * (scraped through the `postgres-patroni` Service; labels `scope`, `pod`, `app`), proven by
 * test/metrics-existence.test.ts. Patroni exports no byte lag; replica lag is the API's
 * measurement (PostgresReplicationLagHigh) and streaming is pg_stat_replication's
 * (PostgresReplicaMissing).
 */
import { type AlertRule, alertRule } from '../monitoring/rule';

/** @param members the StatefulSet's members (1 + replicas). */
export function patroniAlertRules(members: number): AlertRule[] {
  return [
    alertRule(
      'PatroniNoLeader',
      // No member holds the leader key; or no member's Patroni answers at all (`absent`: every
      // postgres pod down, or none scraped), when the by-scope branches have no series to compare.
      'max by (scope) (patroni_master) == 0 or max by (scope) (patroni_cluster_unlocked) == 1 or absent(patroni_master)',
      '1m',
      'page',
      'The PostgreSQL cluster has no leader: writes fail',
      'Patroni cluster {{ with $labels.scope }}{{ . }}{{ else }}(no member answers){{ end }} has had no leader for a minute; see docs/postgres-runbook.md#no-leader.',
    ),
    alertRule(
      'PatroniFailover',
      // The leader moved: a failover (or a switchover someone ran): more than one member led within
      // 10 minutes. Not `changes(patroni_master)`: the first leader of a new cluster reports 0 while it
      // bootstraps, then 1, which is no failover; and one member counts once, whatever its pod IP.
      'count by (scope) (max by (scope, pod) (max_over_time(patroni_master[10m])) == 1) > 1',
      '0m',
      'ticket',
      'The PostgreSQL leader changed',
      'The leader of {{ $labels.scope }} changed in the last 10 minutes; check why (docs/postgres-runbook.md#failover).',
    ),
    alertRule(
      'PatroniTimelineChanged',
      // How far the cluster's newest timeline moved past the oldest one seen in 10 minutes. A member
      // whose PostgreSQL is not running reports timeline 0 (a restart: N, 0, N; a bootstrap: 0, 1):
      // those zeros are left out, or every restart would count as two promotions.
      'max by (scope) (max_over_time(patroni_postgres_timeline[10m])) - min by (scope) (min_over_time((patroni_postgres_timeline > 0)[10m:])) > 0',
      '0m',
      'ticket',
      'A PostgreSQL promotion started a new timeline',
      '{{ $labels.scope }} moved {{ $value }} timeline(s) ahead in 10 minutes; a former leader must rejoin with pg_rewind (docs/postgres-runbook.md#rejoin).',
    ),
    alertRule(
      'PatroniMemberNotRunning',
      'patroni_postgres_running == 0',
      '2m',
      'page',
      'A Patroni member runs no PostgreSQL',
      '{{ $labels.pod }} has not run PostgreSQL for 2 minutes (docs/postgres-runbook.md#reinitialise).',
    ),
    alertRule(
      'PatroniMembersMissing',
      `count by (scope) (patroni_postgres_running == 1) < ${members}`,
      '5m',
      'page',
      `Fewer than ${members} PostgreSQL members running`,
      'Only {{ $value }} members of {{ $labels.scope }} run PostgreSQL: the next failure may lose the cluster (docs/postgres-runbook.md#reinitialise).',
    ),
  ];
}
