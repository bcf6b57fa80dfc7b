/**
 * The observability tier, in one of two modes.
 *
 * Bundled (`Monitoring`): Prometheus (scrapes every tier's annotated metrics port, evaluates
 * the rendered rules, sends alerts to every Alertmanager replica), Alertmanager (routes and
 * receivers from alerting.ts, credentials from Secrets), Grafana (provisioned datasource and
 * dashboards), and optionally kube-state-metrics and the kubelet scrape that the OOM-kill,
 * crash-loop and PVC alerts need.
 *
 * Operator (`OperatorMonitoring`, operator.ts): the same scrape targets, rules, routes and
 * dashboards as custom resources for an existing kube-prometheus-stack.
 */
import { Construct } from 'constructs';
import * as core from '../core';
import { shippedInhibitions } from './alert-rules';
import { ALERTING_DEFAULTS, type AlertingProps } from './alerting';
import { Alertmanager, type AlertmanagerSettings, ALERTMANAGER_DEFAULTS } from './alertmanager';
import { Grafana, type GrafanaSettings } from './grafana';
import {
  KubeStateMetrics,
  KUBE_STATE_METRICS_PORT,
  KUBE_STATE_METRICS_PORT_NAME,
  type KubeStateMetricsSettings,
} from './kube-state-metrics';
import type { MonitoredPlatform } from './monitored';
import { Prometheus, type PrometheusSettings, type ScrapeTarget } from './prometheus';

export { Grafana, GRAFANA_ADMIN_KEYS, GRAFANA_DEFAULTS, DASHBOARD_CONFIGMAP_LIMIT_BYTES } from './grafana';
export type { GrafanaProps, GrafanaSettings } from './grafana';
export { Prometheus, DISCOVERY_RULE, KUBELET_RULES, PROMETHEUS_DEFAULTS } from './prometheus';
export type { PrometheusProps, PrometheusSettings, ScrapeTarget } from './prometheus';
export { Alertmanager, ALERTMANAGER_DEFAULTS } from './alertmanager';
export type { AlertmanagerProps, AlertmanagerSettings } from './alertmanager';
export { KubeStateMetrics, KUBE_STATE_METRICS_DEFAULTS } from './kube-state-metrics';
export type { KubeStateMetricsProps, KubeStateMetricsSettings } from './kube-state-metrics';
export { OperatorMonitoring, OPERATOR_RESOURCE_LABELS, GRAFANA_DASHBOARD_LABEL } from './operator';
export type { OperatorMonitoringProps, PodMonitorTarget } from './operator';
export { ALERTING_DEFAULTS, RECEIVER_TYPES, alertingProblems, checkAlerting } from './alerting';
export type { AlertingProps, ReceiverProps, RouteProps, InhibitRuleProps } from './alerting';
export { ALERT_DEFAULTS, RUNBOOK_URL } from './monitored';
export type { AlertThresholds, MonitoredPlatform, MonitoringMode } from './monitored';

export interface MonitoringProps extends Omit<core.WorkloadProps, 'pod'> {
  /** What the rules and dashboards watch. */
  readonly monitored: MonitoredPlatform;
  /** Every component's metrics port, for Prometheus' egress NetworkPolicy. */
  readonly scrapeTargets: readonly ScrapeTarget[];
  /** Prometheus' settings and pod block. @default - PROMETHEUS_DEFAULTS, no pod block */
  readonly prometheus?: PrometheusSettings & { readonly pod?: core.PodOptions };
  /** Grafana's settings and pod block. @default - GRAFANA_DEFAULTS, no pod block */
  readonly grafana?: GrafanaSettings & { readonly pod?: core.PodOptions };
  /** Alertmanager's settings and pod block. @default - ALERTMANAGER_DEFAULTS, no pod block */
  readonly alertmanager?: AlertmanagerSettings & { readonly pod?: core.PodOptions };
  /** Receivers, routes and inhibit rules. @default ALERTING_DEFAULTS */
  readonly alerting?: AlertingProps;
  /** kube-state-metrics (OOM-kill and crash-loop alerts); `enabled: false` leaves it out. @default - deployed with its defaults */
  readonly kubeStateMetrics?: KubeStateMetricsSettings & { readonly enabled?: boolean; readonly pod?: core.PodOptions };
  /** Scrape the kubelets for volume stats (PVC alerts); needs a ClusterRole (Prometheus KUBELET_RULES). @default true */
  readonly scrapeKubelets?: boolean;
}

/** Prometheus, Alertmanager, Grafana and kube-state-metrics wired together (the bundled mode). */
export class Monitoring extends Construct {
  readonly prometheus: Prometheus;
  readonly alertmanager: Alertmanager;
  readonly grafana: Grafana;
  /** Undefined when `kubeStateMetrics.enabled` is false. */
  readonly kubeStateMetrics?: KubeStateMetrics;
  /** What the rules were rendered for: the monitored platform with what this construct deploys. */
  readonly monitored: MonitoredPlatform;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { scrapeTargets, imagePullSecrets, dnsResolvers } = props;
    const ksmEnabled = props.kubeStateMetrics?.enabled ?? true;
    const scrapeKubelets = props.scrapeKubelets ?? true;
    const replicas = props.alertmanager?.replicas ?? ALERTMANAGER_DEFAULTS.replicas;
    // The rules follow what is deployed here (one source of truth: these props).
    const monitored: MonitoredPlatform = {
      ...props.monitored,
      monitoring: {
        ...props.monitored.monitoring,
        mode: 'bundled',
        alertmanager: { replicas },
        kubeStateMetrics: { enabled: ksmEnabled },
        kubelet: { enabled: scrapeKubelets },
      },
    };
    this.monitored = monitored;
    // Prometheus is built last (it needs their addresses); its pods are the ones they admit.
    const prometheusPods = [core.podsOf(Prometheus.COMPONENT)];
    if (ksmEnabled) {
      const ksm = props.kubeStateMetrics ?? {};
      this.kubeStateMetrics = new KubeStateMetrics(this, 'kube-state-metrics', {
        image: ksm.image,
        resources: ksm.resources,
        pod: ksm.pod,
        scrapers: prometheusPods,
        imagePullSecrets,
        dnsResolvers,
      });
    }
    this.alertmanager = new Alertmanager(this, 'alertmanager', {
      ...props.alertmanager,
      alerting: props.alerting ?? ALERTING_DEFAULTS,
      inhibitions: shippedInhibitions(monitored),
      clients: prometheusPods,
      imagePullSecrets,
      dnsResolvers,
    });
    this.prometheus = new Prometheus(this, 'prometheus', {
      ...props.prometheus,
      monitored,
      scrapeTargets: [
        ...scrapeTargets,
        ...(this.kubeStateMetrics
          ? [{ component: this.kubeStateMetrics.component, port: KUBE_STATE_METRICS_PORT }]
          : []),
      ],
      alertmanagers: {
        addresses: this.alertmanager.replicaAddresses,
        component: this.alertmanager.component,
        port: this.alertmanager.port,
      },
      kubeStateMetrics: this.kubeStateMetrics && {
        component: this.kubeStateMetrics.component,
        portName: KUBE_STATE_METRICS_PORT_NAME,
      },
      scrapeKubelets,
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
