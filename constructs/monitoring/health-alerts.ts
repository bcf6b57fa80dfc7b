/**
 * The alert groups beside the tier rules of alert-rules.ts: a node or pod down (with the
 * alerts it makes redundant, for Alertmanager's inhibition), Kubernetes' view of the pods
 * (OOM kills, crash loops: kube-state-metrics) and volumes (kubelet volume stats), the
 * monitoring stack's own health, and the Watchdog that proves the alert path end to end.
 *
 * Where each metric comes from, and how its name is proven (test/metrics-existence.test.ts):
 * - `up`, `redis_up`: Prometheus and redis_exporter (scraped from the real binaries);
 * - `prometheus_*`: Prometheus' own /metrics (2.53.3 and 2.42, scraped);
 * - `alertmanager_*`: Alertmanager 0.28.1 (Debian 13's build, the pinned image's version, scraped);
 * - `kube_pod_*`: kube-state-metrics, not packaged by Debian: names from its documentation
 *   (KUBE_STATE_METRICS_SOURCE);
 * - `kubelet_volume_stats_*`: the kubelet, which cannot run here: names from its source
 *   (KUBELET_VOLUME_STATS_SOURCE).
 */
import type { AlertRule, Severity } from './alert-rules';
import type { MonitoredPlatform } from './monitored';

/** kube-state-metrics series the rules use; also its `--metric-allowlist`, so nothing else is exported. */
export const KUBE_STATE_METRICS = {
  restarts: 'kube_pod_container_status_restarts_total',
  waitingReason: 'kube_pod_container_status_waiting_reason',
  lastTerminatedReason: 'kube_pod_container_status_last_terminated_reason',
} as const;
/** Where those names are documented (kube-state-metrics is not in Debian, so no binary can show them here). */
export const KUBE_STATE_METRICS_SOURCE =
  'https://github.com/kubernetes/kube-state-metrics/blob/main/docs/metrics/workload/pod-metrics.md';

/** The kubelet's volume statistics (labels `namespace`, `persistentvolumeclaim`); the kubelet scrape keeps only these. */
export const KUBELET_VOLUME_STATS = {
  available: 'kubelet_volume_stats_available_bytes',
  capacity: 'kubelet_volume_stats_capacity_bytes',
} as const;
/** Where those names are defined (the kubelet cannot run without a cluster). */
export const KUBELET_VOLUME_STATS_SOURCE =
  'https://github.com/kubernetes/kubernetes/blob/master/pkg/kubelet/metrics/collectors/volume_stats.go';

/** Alert names other modules refer to (routing, the twin's delivery test). */
export const WATCHDOG = 'Watchdog';

/** "While `source` fires, hold back `targets` whose `equal` labels are the same": an Alertmanager inhibit rule. */
export interface Inhibition {
  readonly source: string;
  readonly targets: readonly string[];
  readonly equal: readonly string[];
}

const rule = (
  alert: string,
  expr: string,
  forDuration: string,
  severity: Severity,
  summary: string,
  description: string,
): AlertRule => ({ alert, expr, for: forDuration, labels: { severity }, annotations: { summary, description } });

/** A pod of a replicated data or API tier down, or a whole stateless tier: the cause of symptom alerts, which it inhibits. */
export function availabilityAlertRules(
  config: MonitoredPlatform,
  components: { api: string; edge: string; redis: string },
) {
  const nodes = config.redis.masters * (1 + config.redis.replicasPerMaster);
  return [
    rule(
      'RedisNodeDown',
      // redis_up: the server is down beside a live exporter; up: the whole pod stopped answering scrapes.
      `redis_up == 0 or up{app="${components.redis}"} == 0`,
      '1m',
      'page',
      'A Redis Cluster node is down',
      `{{ $labels.pod }} has not answered for a minute (one of ${nodes} nodes). Its replica takes over its ` +
        'slots; until it is back, its master (or itself, if it was one) runs without a replica.',
    ),
    rule(
      'ApiDown',
      // Every API pod down (or none discovered): no 5xx ratio either, since only the API's own
      // metrics feed it. namespace and app are what the inhibit rules compare with ApiPodDown's.
      `max by (namespace, app) (up{app="${components.api}"}) == 0 or absent(up{app="${components.api}"})`,
      '1m',
      'page',
      'No API pod answers',
      'None of the API pods has answered a scrape for a minute: every request through the edge fails.',
    ),
    rule(
      'EdgeDown',
      `max by (namespace, app) (up{app="${components.edge}"}) == 0 or absent(up{app="${components.edge}"})`,
      '1m',
      'page',
      'No edge (nginx) pod answers',
      'None of the nginx pods has answered a scrape for a minute: the platform is unreachable from outside.',
    ),
    rule(
      'ApiPodDown',
      `up{app="${components.api}"} == 0`,
      '1m',
      'ticket',
      'An API pod does not answer',
      '{{ $labels.pod }} has not answered a scrape for a minute; the other pods serve its share.',
    ),
  ];
}

/** OOM kills and crash loops, from kube-state-metrics. */
export function kubernetesAlertRules(): AlertRule[] {
  const k = KUBE_STATE_METRICS;
  return [
    rule(
      'KubeContainerOOMKilled',
      `increase(${k.restarts}[15m]) > 0 and on (namespace, pod, container) ${k.lastTerminatedReason}{reason="OOMKilled"} == 1`,
      '0m',
      'ticket',
      'A container was OOM-killed',
      'Container {{ $labels.container }} of {{ $labels.pod }} restarted after the kernel killed it for exceeding its memory limit.',
    ),
    rule(
      'KubePodCrashLooping',
      `max_over_time(${k.waitingReason}{reason="CrashLoopBackOff"}[5m]) >= 1`,
      '15m',
      'ticket',
      'A container is crash-looping',
      'Container {{ $labels.container }} of {{ $labels.pod }} has been in CrashLoopBackOff for 15 minutes.',
    ),
  ];
}

const pct = (ratio: number) => `${+(ratio * 100).toFixed(2)} %`;

/** A PVC filling up, from the kubelet's volume stats. */
export function volumeAlertRules(config: MonitoredPlatform): AlertRule[] {
  const a = config.monitoring.alerts;
  const v = KUBELET_VOLUME_STATS;
  const free = `${v.available} / ${v.capacity}`;
  return [
    rule(
      'PersistentVolumeFillingUp',
      // The trend over 6 h, projected: full within volumeFullInHours at this rate, and already below the free ratio.
      `${free} < ${a.volumeFreeRatio} and predict_linear(${v.available}[6h], ${a.volumeFullInHours} * 3600) < 0`,
      '1h',
      'ticket',
      `A volume is predicted to fill up within ${a.volumeFullInHours} hours`,
      `PVC {{ $labels.persistentvolumeclaim }} has {{ $value | humanizePercentage }} free and fills at a rate that ` +
        `leaves none within ${a.volumeFullInHours} hours.`,
    ),
    rule(
      'PersistentVolumeAlmostFull',
      `${free} < ${a.volumeCriticalFreeRatio}`,
      '5m',
      'page',
      `A volume has less than ${pct(a.volumeCriticalFreeRatio)} free`,
      'PVC {{ $labels.persistentvolumeclaim }} has {{ $value | humanizePercentage }} free; writes fail when it is full.',
    ),
  ];
}

/** The bundled Prometheus' and Alertmanager's own health (operator mode: the stack ships its own). */
export function monitoringAlertRules(alertmanagerReplicas: number): AlertRule[] {
  const rules = [
    rule(
      'PrometheusRuleEvaluationFailures',
      'increase(prometheus_rule_evaluation_failures_total[5m]) > 0',
      '15m',
      'page',
      'Prometheus fails to evaluate rules',
      '{{ $value | humanize }} evaluations of group {{ $labels.rule_group }} failed in 5 minutes: its alerts may not fire.',
    ),
    rule(
      'PrometheusNotificationsFailing',
      'rate(prometheus_notifications_errors_total[5m]) / rate(prometheus_notifications_sent_total[5m]) > 0.01',
      '15m',
      'ticket',
      'Prometheus fails to send alerts to an Alertmanager',
      '{{ $value | humanizePercentage }} of the alerts sent to {{ $labels.alertmanager }} failed. When every ' +
        "Alertmanager fails, this alert cannot arrive either: the Watchdog stops and the dead man's switch pages.",
    ),
    rule(
      'PrometheusTSDBCompactionsFailing',
      'increase(prometheus_tsdb_compactions_failed_total[3h]) > 0',
      '4h',
      'ticket',
      'Prometheus fails to compact its storage',
      '{{ $value | humanize }} compactions failed in 3 hours; the volume fills with uncompacted blocks.',
    ),
    rule(
      'PrometheusConfigReloadFailed',
      'max_over_time(prometheus_config_last_reload_successful[5m]) == 0',
      '10m',
      'ticket',
      'Prometheus could not load its configuration',
      'The last reload of prometheus.yml or a rule file failed; Prometheus runs the previous version.',
    ),
    rule(
      'AlertmanagerConfigReloadFailed',
      'max_over_time(alertmanager_config_last_reload_successful[5m]) == 0',
      '10m',
      'ticket',
      'Alertmanager could not load its configuration',
      '{{ $labels.pod }} runs its previous routes and receivers: the last alertmanager.yml was refused.',
    ),
    rule(
      'AlertmanagerNotificationsFailing',
      'rate(alertmanager_notifications_failed_total[5m]) > 0',
      '10m',
      'ticket',
      'Alertmanager fails to deliver notifications',
      '{{ $labels.pod }} fails to deliver through {{ $labels.integration }}: check the receiver and its Secret.',
    ),
  ];
  if (alertmanagerReplicas > 1) {
    rules.push(
      rule(
        'AlertmanagerClusterMembersMissing',
        `alertmanager_cluster_members < ${alertmanagerReplicas}`,
        '15m',
        'ticket',
        `An Alertmanager sees fewer than ${alertmanagerReplicas} cluster members`,
        '{{ $labels.pod }} sees {{ $value }} members: silences and notification state are not shared, so ' +
          'notifications may repeat.',
      ),
    );
  }
  return rules;
}

/** Always firing: routed to a dead man's switch, whose silence means the alert path is broken. */
export function watchdogAlertRule(): AlertRule {
  return rule(
    WATCHDOG,
    'vector(1)',
    '0m',
    'none',
    'The alert path works (always firing)',
    "This alert fires all the time so that a dead man's switch receives it every repeat interval. If that " +
      'service stops hearing from it, Prometheus, Alertmanager or the path between them is broken.',
  );
}

/** The inhibitions the rules call for (those whose alerts exist): a node down makes the symptoms it causes redundant. */
export function ruleInhibitions(alerts: ReadonlySet<string>): Inhibition[] {
  const all: Inhibition[] = [
    { source: 'RedisNodeDown', targets: ['ServerUnreachableFromExporter', 'TargetDown'], equal: ['namespace', 'pod'] },
    // The master whose replica is down has none left: the node down is the one thing to fix.
    { source: 'RedisNodeDown', targets: ['RedisMasterWithoutReplica'], equal: ['namespace'] },
    { source: 'ApiPodDown', targets: ['TargetDown'], equal: ['namespace', 'pod'] },
    // The whole tier down: one page instead of one alert per pod.
    { source: 'ApiDown', targets: ['ApiPodDown', 'TargetDown'], equal: ['namespace', 'app'] },
    { source: 'EdgeDown', targets: ['TargetDown'], equal: ['namespace', 'app'] },
    // PostgreSQL (Patroni, PgBouncer): a cluster without a leader is why the poolers cannot log in and
    // their clients wait; a member whose PostgreSQL is stopped is why its exporter cannot reach it, why
    // fewer members run and why the leader has a replica less. The cluster-wide alerts aggregate the
    // namespace away, so those rules compare no label: one Patroni cluster per namespace, a bundled
    // Alertmanager serves one namespace, and the operator confines an AlertmanagerConfig's inhibit
    // rules to alerts of its own namespace.
    { source: 'PatroniNoLeader', targets: ['PgBouncerServerLoginFailing', 'PgBouncerClientsWaiting'], equal: [] },
    { source: 'PatroniMemberNotRunning', targets: ['ServerUnreachableFromExporter'], equal: ['namespace', 'pod'] },
    { source: 'PatroniMemberNotRunning', targets: ['PatroniMembersMissing', 'PostgresReplicaMissing'], equal: [] },
    { source: 'PatroniMembersMissing', targets: ['PostgresReplicaMissing'], equal: [] },
    { source: 'KubePodCrashLooping', targets: ['ContainerRestarting'], equal: ['namespace', 'pod'] },
    { source: 'KubeContainerOOMKilled', targets: ['ContainerRestarting'], equal: ['namespace', 'pod'] },
    {
      source: 'PersistentVolumeAlmostFull',
      targets: ['PersistentVolumeFillingUp'],
      equal: ['namespace', 'persistentvolumeclaim'],
    },
  ];
  return all
    .map((i) => ({ ...i, targets: i.targets.filter((t) => alerts.has(t)) }))
    .filter((i) => alerts.has(i.source) && i.targets.length > 0);
}
