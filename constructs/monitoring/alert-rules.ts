/**
 * Prometheus recording and alert rules, rendered from the environment config
 * (thresholds in `monitoring.alerts`, replica counts and HPA bounds from the
 * tiers). The same bytes go into the `prometheus-config` ConfigMap, into
 * `promtool check rules` and into `promtool test rules`
 * (test/fixtures/promtool/*.test.yml).
 *
 * Every metric used here exists in a real scrape (test/metrics-existence.test.ts):
 * - the API service: SERVICE_METRICS of service/src/contract.ts, plus prom-client's
 *   default `process_start_time_seconds`;
 * - postgres_exporter, redis_exporter, nginx-prometheus-exporter (stub_status);
 * - Patroni's REST /metrics and pgbouncer_exporter (constructs/postgres/patroni-alerts.ts,
 *   constructs/pgbouncer/pgbouncer-alerts.ts);
 * - `up`, which Prometheus writes for every target.
 * These tier rules need no kube-state-metrics (optional, see health-alerts.ts): "at max
 * replicas" counts the API / edge pods Prometheus scrapes (`up`, one target per pod)
 * against the HPA bound from the config, and "restarting" watches the process start
 * time each container exports.
 *
 * `shippedRuleGroups` is what ships: these rules in group `fastnext-alerts`, the groups of
 * health-alerts.ts beside them, each alert with its `runbook_url`; in operator mode every
 * expression is scoped to the namespace (promql.ts).
 */
import { stringify } from 'yaml';
import { SERVICE_METRICS } from '../../service/src/contract';
import { pgbouncerAlertRules } from '../pgbouncer/pgbouncer-alerts';
import { patroniAlertRules } from '../postgres/patroni-alerts';
import { backupAlertRules } from '../postgres/backup-alerts';
import {
  availabilityAlertRules,
  type Inhibition,
  kubernetesAlertRules,
  monitoringAlertRules,
  ruleInhibitions,
  volumeAlertRules,
  watchdogAlertRule,
} from './health-alerts';
import { type MonitoredPlatform, RUNBOOK_URL } from './monitored';
import { withLabelMatcher } from './promql';
import { type AlertRule, alertRule } from './rule';

export { type AlertRule, alertRule, type Severity } from './rule';

/** app.kubernetes.io/name of the tiers the rules select on (Prometheus relabels it to `app`). */
export const RULE_COMPONENTS = { api: 'api', edge: 'edge', redis: 'redis' } as const;

export interface RecordingRule {
  readonly record: string;
  readonly expr: string;
}

const M = SERVICE_METRICS;
const HTTP_COUNT = `${M.httpRequestDuration}_count`;
const HTTP_BUCKET = `${M.httpRequestDuration}_bucket`;

/** Names of the recorded series, for dashboards. */
export const RECORDED = {
  requestRate: 'fastnext:http_requests:rate5m',
  errorRatio: 'fastnext:http_errors:ratio5m',
  latencyP50: 'fastnext:http_request_duration_seconds:p50_5m',
  latencyP95: 'fastnext:http_request_duration_seconds:p95_5m',
  latencyP99: 'fastnext:http_request_duration_seconds:p99_5m',
  cacheHitRatio: 'fastnext:cache_hit:ratio5m',
  edgeRequestRate: 'fastnext:edge_requests:rate5m',
  edgeUnproxiedRatio: 'fastnext:edge_unproxied:ratio5m',
} as const;

/** `hits / (hits + misses)` over 5m rates, summed (optionally `by` labels). */
export function hitRatio(hits: string, misses: string, by = ''): string {
  const sum = (m: string) => `sum${by ? ` by (${by})` : ''} (rate(${m}[5m]))`;
  return `${sum(hits)} / (${sum(hits)} + ${sum(misses)})`;
}

const quantile = (q: number) => `histogram_quantile(${q}, sum by (le) (rate(${HTTP_BUCKET}[5m])))`;

/** Recording rules: the request rate, error ratio and latency quantiles the dashboards and alerts share. */
export function recordingRules(): RecordingRule[] {
  return [
    { record: RECORDED.requestRate, expr: `sum(rate(${HTTP_COUNT}[5m]))` },
    {
      record: RECORDED.errorRatio,
      expr: `sum(rate(${HTTP_COUNT}{status_code=~"5.."}[5m])) / sum(rate(${HTTP_COUNT}[5m]))`,
    },
    { record: RECORDED.latencyP50, expr: quantile(0.5) },
    { record: RECORDED.latencyP95, expr: quantile(0.95) },
    { record: RECORDED.latencyP99, expr: quantile(0.99) },
    {
      record: RECORDED.cacheHitRatio,
      expr: hitRatio(M.cacheHits, M.cacheMisses),
    },
    { record: RECORDED.edgeRequestRate, expr: 'sum(rate(nginx_http_requests_total[5m]))' },
    {
      // stub_status has no status codes, so nginx's 429s are not countable directly. Requests nginx
      // answered itself (429 rate limiting, 413, its own health/stub_status hits) = edge - API.
      record: RECORDED.edgeUnproxiedRatio,
      expr: `clamp_min(${RECORDED.edgeRequestRate} - ${RECORDED.requestRate}, 0) / ${RECORDED.edgeRequestRate}`,
    },
  ];
}

const pct = (ratio: number) => `${+(ratio * 100).toFixed(2)} %`;

/** Alert rules, thresholds from `config.monitoring.alerts`. */
export function alertRules(config: MonitoredPlatform): AlertRule[] {
  const a = config.monitoring.alerts;
  const rule = alertRule;
  /** The tier has run at its HPA maximum for 15 minutes. */
  const atMaxReplicas = (alert: string, tier: 'api' | 'edge', label: string, description: string) => {
    const max = config[tier].autoscaling.maxReplicas;
    return rule(
      alert,
      `count(up{app="${RULE_COMPONENTS[tier]}"}) >= ${max}`,
      '15m',
      'ticket',
      `${label} at its HPA maximum (${max} pods)`,
      description,
    );
  };
  const rules: AlertRule[] = [
    rule(
      'ApiErrorRatioHigh',
      `${RECORDED.errorRatio} > ${a.apiErrorRatio}`,
      '5m',
      'page',
      `API 5xx ratio above ${pct(a.apiErrorRatio)}`,
      '{{ $value | humanizePercentage }} of API requests failed with 5xx over the last 5 minutes.',
    ),
    rule(
      'ApiLatencyP95High',
      `${RECORDED.latencyP95} > ${a.apiP95LatencySeconds}`,
      '10m',
      'page',
      `API p95 latency above ${a.apiP95LatencySeconds * 1000} ms`,
      'p95 request latency is {{ $value | humanizeDuration }}.',
    ),
    rule(
      'CacheHitRatioLow',
      `${RECORDED.cacheHitRatio} < ${a.cacheHitRatio}`,
      '15m',
      'ticket',
      `API cache hit ratio below ${pct(a.cacheHitRatio)}`,
      'Cache hit ratio is {{ $value | humanizePercentage }}; more reads reach PostgreSQL.',
    ),
    rule(
      'PostgresReplicationLagHigh',
      `max by (replica) (${M.replicaLagSeconds}) > ${a.replicationLagSeconds}`,
      '2m',
      'page',
      `A PostgreSQL replica lags more than ${a.replicationLagSeconds} s`,
      'Replica {{ $labels.replica }} lags {{ $value | humanizeDuration }} (as measured by the API service).',
    ),
    rule(
      'PostgresConnectionsHigh',
      `sum by (instance) (pg_stat_activity_count) / on (instance) max by (instance) (pg_settings_max_connections) > ${a.postgresConnectionsRatio}`,
      '5m',
      'ticket',
      `PostgreSQL connections above ${pct(a.postgresConnectionsRatio)} of max_connections`,
      '{{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_connections.',
    ),
    rule(
      'RedisClusterStateNotOk',
      'redis_cluster_state == 0',
      '1m',
      'page',
      'Redis Cluster state is not ok',
      '{{ $labels.instance }} reports cluster_state:fail; some hash slots are not served.',
    ),
    rule(
      'ServerUnreachableFromExporter',
      'pg_up == 0 or redis_up == 0 or nginx_up == 0',
      '2m',
      'page',
      'An exporter cannot reach the server beside it',
      'The exporter of {{ $labels.pod }} ({{ $labels.app }}) cannot reach its server.',
    ),
    rule(
      'EdgeRejectedRatioHigh',
      `${RECORDED.edgeUnproxiedRatio} > ${a.edge429Ratio} and ${RECORDED.edgeRequestRate} > 1`,
      '10m',
      'ticket',
      `More than ${pct(a.edge429Ratio)} of edge requests answered by nginx itself (mostly 429s)`,
      '{{ $value | humanizePercentage }} of requests never reached the API: rate limiting (429) is the usual cause. ' +
        'stub_status has no status codes, so this is an upper bound of the 429 ratio.',
    ),
    atMaxReplicas(
      'ApiAtMaxReplicas',
      'api',
      'API',
      'The API has run at maxReplicas for 15 minutes: raise the bound or find the load.',
    ),
    atMaxReplicas('EdgeAtMaxReplicas', 'edge', 'Edge', 'nginx has run at maxReplicas for 15 minutes.'),
    rule(
      'ContainerRestarting',
      // Redis: the exporter's redis_start_time_seconds is now() - uptime at each scrape, so it wobbles
      // by a second with no restart; the uptime going back (a reset) is the restart.
      'changes(process_start_time_seconds[30m]) >= 2 or resets(redis_uptime_in_seconds[30m]) >= 2',
      '0m',
      'ticket',
      'A container restarted at least twice in 30 minutes',
      '{{ $labels.pod }} ({{ $labels.app }}) restarted {{ $value }} times in 30 minutes.',
    ),
    rule(
      'TargetDown',
      'up == 0',
      '5m',
      'ticket',
      'A scrape target is down',
      '{{ $labels.job }} target {{ $labels.instance }} ({{ $labels.pod }}) has not answered scrapes for 5 minutes.',
    ),
  ];
  if (config.postgres.replicas > 0) {
    rules.push(
      rule(
        'PostgresReplicaMissing',
        // `or ... * 0` gives the primary (in_hot_standby off) a count of 0 when no replica streams at all.
        `(count by (instance) (pg_stat_replication_pg_wal_lsn_diff{state="streaming"}) or max by (instance) (pg_settings_in_hot_standby == 0) * 0) < ${config.postgres.replicas}`,
        '5m',
        'page',
        `Fewer than ${config.postgres.replicas} replicas streaming from the primary`,
        'pg_stat_replication on {{ $labels.instance }} lists {{ $value }} streaming replicas.',
      ),
    );
  }
  rules.push(...patroniAlertRules(1 + config.postgres.replicas), ...pgbouncerAlertRules());
  if (config.redis.replicasPerMaster > 0) {
    rules.push(
      rule(
        'RedisMasterWithoutReplica',
        `redis_connected_slaves < ${config.redis.replicasPerMaster} and on (instance) redis_instance_info{role="master"}`,
        '5m',
        'page',
        'A Redis master has fewer replicas than configured',
        '{{ $labels.pod }} has {{ $value }} connected replicas; losing it now loses its slots.',
      ),
    );
  }
  return rules;
}

/** recording-rules.yml */
export function renderRecordingRules(): string {
  return `# Rendered by constructs/config-files/alert-rules.ts.\n${stringify({ groups: [recordingRuleGroup()] })}`;
}

/** alert-rules.yml */
export function renderAlertRules(config: MonitoredPlatform): string {
  return `# Rendered by constructs/config-files/alert-rules.ts for environment '${config.name}'.\n${stringify({
    groups: shippedRuleGroups(config),
  })}`;
}

/** An alert rule as it ships: with its runbook link, and in operator mode the namespace label. */
export interface ShippedAlertRule extends AlertRule {
  readonly labels: AlertRule['labels'] & { readonly namespace?: string };
  readonly annotations: AlertRule['annotations'] & { readonly runbook_url: string };
}

export interface RuleGroup<R> {
  readonly name: string;
  readonly rules: readonly R[];
}

/** Scoping for a Prometheus shared with other namespaces (operator mode). */
export interface RuleScope {
  /** Every selector matches `namespace=<this>`; alerts and recorded series carry it as a label. */
  readonly namespace: string;
}

/** The anchor of an alert's runbook section: GitHub's slug of its `## <Alert>` heading. */
export const runbookAnchor = (alert: string) => alert.toLowerCase();

/** The recording rules' group, scoped when `scope` is given (each recorded series then carries the namespace). */
export function recordingRuleGroup(scope?: RuleScope): RuleGroup<RecordingRule & { labels?: { namespace: string } }> {
  return {
    name: 'fastnext-recording',
    rules: recordingRules().map((r) =>
      scope
        ? { ...r, expr: withLabelMatcher(r.expr, 'namespace', scope.namespace), labels: { namespace: scope.namespace } }
        : r,
    ),
  };
}

/**
 * Every alert group that ships for this platform: the tier rules (`fastnext-alerts`), the
 * backups (`fastnext-backup`, when backups are on), a pod or
 * node down (`fastnext-availability`), Kubernetes' view when kube-state-metrics runs or the
 * kubelets are scraped (`fastnext-kubernetes`), the bundled stack's own health
 * (`fastnext-monitoring`, bundled mode only) and the Watchdog (`fastnext-watchdog`).
 */
export function shippedRuleGroups(config: MonitoredPlatform, scope?: RuleScope): RuleGroup<ShippedAlertRule>[] {
  const m = config.monitoring;
  const operator = m.mode === 'operator';
  const groups: RuleGroup<AlertRule>[] = [
    { name: 'fastnext-alerts', rules: alertRules(config) },
    // Its own group, so it merges apart from the tier rules (constructs/postgres/backup-alerts.ts); none when backups are off.
    { name: 'fastnext-backup', rules: backupAlertRules(config.postgres.backup) },
    { name: 'fastnext-availability', rules: availabilityAlertRules(config, RULE_COMPONENTS) },
    {
      name: 'fastnext-kubernetes',
      rules: [
        ...(m.kubeStateMetrics?.enabled ? kubernetesAlertRules() : []),
        ...(m.kubelet?.enabled ? volumeAlertRules(config) : []),
      ],
    },
    { name: 'fastnext-monitoring', rules: operator ? [] : monitoringAlertRules(m.alertmanager?.replicas ?? 1) },
    { name: 'fastnext-watchdog', rules: [watchdogAlertRule()] },
  ];
  const runbook = m.runbookUrl ?? RUNBOOK_URL;
  return groups
    .filter((g) => g.rules.length > 0)
    .map((g) => ({
      name: g.name,
      rules: g.rules.map((r): ShippedAlertRule => ({
        ...r,
        expr: scope ? withLabelMatcher(r.expr, 'namespace', scope.namespace) : r.expr,
        labels: scope ? { ...r.labels, namespace: scope.namespace } : r.labels,
        annotations: { ...r.annotations, runbook_url: `${runbook}#${runbookAnchor(r.alert)}` },
      })),
    }));
}

/** Every alert that ships, across groups. */
export function shippedAlertRules(config: MonitoredPlatform, scope?: RuleScope): ShippedAlertRule[] {
  return shippedRuleGroups(config, scope).flatMap((g) => g.rules);
}

/** The Alertmanager inhibit rules the shipped alerts call for (health-alerts.ts `ruleInhibitions`). */
export function shippedInhibitions(config: MonitoredPlatform): Inhibition[] {
  return ruleInhibitions(new Set(shippedAlertRules(config).map((r) => r.alert)));
}
