/**
 * The observability tier: Prometheus (scrapes every tier's annotated metrics
 * port, evaluates the rendered rules) and Grafana (provisioned datasource and
 * dashboards). kube-state-metrics is deliberately absent: the rules use only
 * metrics the tiers and Prometheus itself produce (see alert-rules.ts).
 */
import { Construct } from 'constructs';
import type { PodOptions } from '../core/pod';
import type { WorkloadProps } from '../core/workload';
import { Grafana, type GrafanaSettings } from './grafana';
import type { MonitoredPlatform } from './monitored';
import { Prometheus, type PrometheusSettings, type ScrapeTarget } from './prometheus';

export { Grafana, GRAFANA_ADMIN_KEYS, GRAFANA_DEFAULTS, DASHBOARD_CONFIGMAP_LIMIT_BYTES } from './grafana';
export type { GrafanaProps, GrafanaSettings } from './grafana';
export { Prometheus, DISCOVERY_RULE, PROMETHEUS_DEFAULTS } from './prometheus';
export type { PrometheusProps, PrometheusSettings, ScrapeTarget } from './prometheus';
export { ALERT_DEFAULTS } from './monitored';
export type { AlertThresholds, MonitoredPlatform } from './monitored';

export interface MonitoringProps extends Omit<WorkloadProps, 'pod'> {
  /** What the rules and dashboards watch. */
  readonly monitored: MonitoredPlatform;
  /** Every component's metrics port, for Prometheus' egress NetworkPolicy. */
  readonly scrapeTargets: readonly ScrapeTarget[];
  /** Prometheus' settings and pod block. @default - PROMETHEUS_DEFAULTS, no pod block */
  readonly prometheus?: PrometheusSettings & { readonly pod?: PodOptions };
  /** Grafana's settings and pod block. @default - GRAFANA_DEFAULTS, no pod block */
  readonly grafana?: GrafanaSettings & { readonly pod?: PodOptions };
}

/** Prometheus and Grafana wired together. */
export class Monitoring extends Construct {
  readonly prometheus: Prometheus;
  readonly grafana: Grafana;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { monitored, scrapeTargets, imagePullSecrets, dnsResolvers } = props;
    this.prometheus = new Prometheus(this, 'prometheus', {
      ...props.prometheus,
      monitored,
      scrapeTargets,
      imagePullSecrets,
      dnsResolvers,
    });
    this.grafana = new Grafana(this, 'grafana', {
      ...props.grafana,
      monitored,
      prometheus: this.prometheus,
      imagePullSecrets,
      dnsResolvers,
    });
  }
}
