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
import { KUBELET_VOLUME_STATS } from './health-alerts';
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

/** The pod label kube-state-metrics' own job keeps, and the name of its metrics port. */
export interface KubeStateMetricsTarget {
  readonly component: string;
  readonly portName: string;
}

/** Where the ServiceAccount token and CA are mounted in every pod that mounts them. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The kubelet's HTTPS port, where its /metrics is. */
export const KUBELET_PORT = 10250;

/** What prometheus.yml needs beyond the watched platform. */
export interface PrometheusConfigInput extends MonitoredPlatform {
  /** The namespace discovery watches. */
  readonly namespace: string;
  /** `host:port` of each Alertmanager replica; alerts go to every one. @default - no `alerting:` block */
  readonly alertmanagers?: readonly string[];
  /** A kube-state-metrics to scrape in a job of its own. @default - none */
  readonly kubeStateMetrics?: KubeStateMetricsTarget;
  /** Scrape every node's kubelet for the volume stats of this namespace's PVCs. @default false */
  readonly scrapeKubelets?: boolean;
}

/** Renders prometheus.yml for one environment. */
export function renderPrometheusConfig(config: PrometheusConfigInput): string {
  const p = config.monitoring.prometheus;
  const interval = `${p.scrapeIntervalSeconds}s`;
  const sd = (role: 'pod' | 'endpoints') => [{ role, namespaces: { names: [config.namespace] } }];
  const ksm = config.kubeStateMetrics;
  const doc = {
    global: {
      scrape_interval: interval,
      evaluation_interval: interval,
      scrape_timeout: `${Math.min(10, p.scrapeIntervalSeconds)}s`,
      external_labels: { environment: config.name },
    },
    ...(config.alertmanagers?.length
      ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [...config.alertmanagers] }] }] } }
      : {}),
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
      ...(ksm
        ? [
            {
              // No pod/namespace target labels: its series carry those of the pods they describe.
              job_name: 'kube-state-metrics',
              kubernetes_sd_configs: sd('pod'),
              relabel_configs: [
                {
                  source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name'],
                  action: 'keep',
                  regex: ksm.component,
                },
                { source_labels: ['__meta_kubernetes_pod_container_port_name'], action: 'keep', regex: ksm.portName },
              ],
            },
          ]
        : []),
      ...(config.scrapeKubelets
        ? [
            {
              // Each node's kubelet, with this pod's token (ClusterRole: nodes/metrics). Kubelet serving
              // certificates are self-signed on most clusters, hence no verification of the name.
              job_name: 'kubelet',
              scheme: 'https',
              authorization: { credentials_file: `${SERVICE_ACCOUNT_DIR}/token` },
              tls_config: { ca_file: `${SERVICE_ACCOUNT_DIR}/ca.crt`, insecure_skip_verify: true },
              kubernetes_sd_configs: [{ role: 'node' }],
              metric_relabel_configs: [
                {
                  source_labels: ['__name__'],
                  action: 'keep',
                  regex: Object.values(KUBELET_VOLUME_STATS).join('|'),
                },
                // Every namespace's volumes are on the nodes: keep ours.
                { source_labels: ['namespace'], action: 'keep', regex: config.namespace },
              ],
            },
          ]
        : []),
    ],
  };
  return `# Rendered by constructs/config-files/prometheus-config.ts for environment '${config.name}'.\n${stringify(doc)}`;
}
