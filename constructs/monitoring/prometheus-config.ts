/**
 * prometheus.yml, rendered from the environment config. The same bytes go into
 * the `prometheus-config` ConfigMap and into `promtool check config` in jest.
 *
 * Discovery is namespace-scoped kubernetes_sd (pods and endpoints), so the
 * RBAC can be a Role instead of a ClusterRole. A pod opts in with the
 * `prometheus.io/scrape|port|path` annotations (constructs/core/network.ts
 * `scrapeAnnotations`); a Service may opt in the same way for endpoints whose
 * pods are not annotated. Do not annotate both: the target would be scraped twice.
 */
import { stringify } from 'yaml';
import type { MonitoredPlatform } from './monitored';

/** File names inside the config directory; rule files sit beside prometheus.yml (paths resolve relative to it). */
export const PROMETHEUS_FILES = {
  config: 'prometheus.yml',
  alertRules: 'alert-rules.yml',
  recordingRules: 'recording-rules.yml',
} as const;

/** Where the config ConfigMap is mounted in the Prometheus container. */
export const PROMETHEUS_CONFIG_DIR = '/etc/prometheus/config';
/** Port of the Prometheus web UI / API. */
export const PROMETHEUS_PORT = 9090;

const ANNOTATION = (name: string) => `__meta_kubernetes_${name}_annotation_prometheus_io_`;
const PRESENT = (name: string) => `__meta_kubernetes_${name}_annotationpresent_prometheus_io_`;

/** Relabeling shared by the pod and endpoints jobs: keep opted-in targets, honour path and port. */
function annotationRelabeling(kind: 'pod' | 'service'): Record<string, unknown>[] {
  return [
    { source_labels: [`${ANNOTATION(kind)}scrape`], action: 'keep', regex: 'true' },
    {
      source_labels: [`${PRESENT(kind)}path`, `${ANNOTATION(kind)}path`],
      action: 'replace',
      regex: 'true;(.+)',
      target_label: '__metrics_path__',
    },
    {
      // __address__ is ip:containerPort (or ip alone for a pod without declared ports).
      source_labels: ['__address__', `${ANNOTATION(kind)}port`],
      action: 'replace',
      regex: '([^:]+)(?::\\d+)?;(\\d+)',
      replacement: '$1:$2',
      target_label: '__address__',
    },
  ];
}

const COMMON_LABELS = [
  { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
  { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
  // The component (app.kubernetes.io/name) is what rules and dashboards select on.
  { source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name'], target_label: 'app' },
];

/** Renders prometheus.yml for one environment. */
export function renderPrometheusConfig(config: MonitoredPlatform & { readonly namespace: string }): string {
  const p = config.monitoring.prometheus;
  const interval = `${p.scrapeIntervalSeconds}s`;
  const sd = (role: 'pod' | 'endpoints') => [{ role, namespaces: { names: [config.namespace] } }];
  const doc = {
    global: {
      scrape_interval: interval,
      evaluation_interval: interval,
      scrape_timeout: `${Math.min(10, p.scrapeIntervalSeconds)}s`,
      external_labels: { environment: config.name },
    },
    rule_files: [PROMETHEUS_FILES.recordingRules, PROMETHEUS_FILES.alertRules],
    scrape_configs: [
      { job_name: 'prometheus', static_configs: [{ targets: [`localhost:${PROMETHEUS_PORT}`] }] },
      {
        job_name: 'kubernetes-pods',
        kubernetes_sd_configs: sd('pod'),
        relabel_configs: [
          ...annotationRelabeling('pod'),
          // Completed Job pods keep their IP in the API for a while: never scrape them.
          { source_labels: ['__meta_kubernetes_pod_phase'], action: 'drop', regex: 'Succeeded|Failed' },
          ...COMMON_LABELS,
        ],
      },
      {
        job_name: 'kubernetes-service-endpoints',
        kubernetes_sd_configs: sd('endpoints'),
        relabel_configs: [
          ...annotationRelabeling('service'),
          ...COMMON_LABELS,
          { source_labels: ['__meta_kubernetes_service_name'], target_label: 'service' },
        ],
      },
    ],
  };
  return `# Rendered by constructs/config-files/prometheus-config.ts for environment '${config.name}'.\n${stringify(doc)}`;
}
