/**
 * Operator mode: the platform's monitoring as custom resources for a prometheus-operator
 * stack that already runs (kube-prometheus-stack), and nothing of its own. A PodMonitor per
 * scrape target, one PrometheusRule with the same rule groups as the bundled mode (every
 * expression scoped to this namespace: the stack's Prometheus sees every namespace), one
 * AlertmanagerConfig with the same routes, receivers and inhibit rules, and the dashboards
 * as ConfigMaps labelled `grafana_dashboard: "1"` for the stack's Grafana sidecar.
 *
 * The stack selects these by label (its `*Selector`s); kube-prometheus-stack's defaults
 * select `release: <its Helm release>`, hence `resourceLabels`.
 */
import { createHash } from 'crypto';
import { ApiObject } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { recordingRuleGroup, shippedInhibitions, shippedRuleGroups } from './alert-rules';
import { type AlertingProps, ALERTING_DEFAULTS, checkAlerting } from './alerting';
import { alertmanagerConfigSpec } from './alertmanager-config';
import { dashboards, renderDashboard, type Dashboard } from './dashboards';
import { WATCHDOG } from './health-alerts';
import type { MonitoredPlatform } from './monitored';
import { withLabelMatcher } from './promql';

/** The Grafana sidecar's default label: ConfigMaps carrying it are imported as dashboards. */
export const GRAFANA_DASHBOARD_LABEL = { grafana_dashboard: '1' } as const;
/** kube-prometheus-stack's default selector for every monitoring resource (its Helm release label). */
export const OPERATOR_RESOURCE_LABELS: Readonly<Record<string, string>> = { release: 'kube-prometheus-stack' };
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** A pod port Prometheus scrapes, by the container port's name. */
export interface PodMonitorTarget {
  /** Component name of the pods (label `app.kubernetes.io/name`). */
  readonly component: string;
  /** Names of the container ports serving metrics (one endpoint each). @default ['metrics'] */
  readonly portNames?: readonly string[];
  /** @default '/metrics' */
  readonly path?: string;
}

export interface OperatorMonitoringProps {
  /** What the rules and dashboards watch. */
  readonly monitored: MonitoredPlatform;
  /** Every component whose pods are scraped. */
  readonly scrapeTargets: readonly PodMonitorTarget[];
  /** Receivers, routes and inhibit rules of the AlertmanagerConfig. @default ALERTING_DEFAULTS */
  readonly alerting?: AlertingProps;
  /** Labels the stack's podMonitorSelector, ruleSelector and alertmanagerConfigSelector match. @default { release: 'kube-prometheus-stack' } */
  readonly resourceLabels?: Readonly<Record<string, string>>;
}

/** `monitoring.coreos.com` objects and labelled dashboards for an existing prometheus-operator stack. */
export class OperatorMonitoring extends Construct {
  /** Dashboard ConfigMap names by dashboard short name. */
  readonly dashboardConfigMaps: Readonly<Record<string, string>>;
  readonly prometheusRuleName: string;
  readonly alertmanagerConfigName: string;

  constructor(scope: Construct, id: string, props: OperatorMonitoringProps) {
    super(scope, id);
    const ns = core.namespaceOf(this);
    const alerting = props.alerting ?? ALERTING_DEFAULTS;
    checkAlerting('alerting', alerting);
    const resourceLabels = { ...(props.resourceLabels ?? OPERATOR_RESOURCE_LABELS) };
    for (const [k, v] of Object.entries(resourceLabels)) {
      if (!LABEL_VALUE.test(v)) core.fail(`resourceLabels.${k}`, v, 'must be a label value');
    }
    const monitored: MonitoredPlatform = {
      ...props.monitored,
      monitoring: { ...props.monitored.monitoring, mode: 'operator' },
    };
    const c = 'monitoring';
    const objectMeta = (name: string, labels: Record<string, string> = {}) =>
      core.meta(this, c, name, { labels: { ...resourceLabels, ...labels } });
    const interval = `${monitored.monitoring.prometheus.scrapeIntervalSeconds}s`;

    for (const t of props.scrapeTargets) {
      new ApiObject(this, `pod-monitor-${t.component}`, {
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'PodMonitor',
        metadata: objectMeta(t.component),
        spec: {
          selector: { matchLabels: core.selectorLabels(t.component) },
          namespaceSelector: { matchNames: [ns] },
          podMetricsEndpoints: (t.portNames ?? ['metrics']).map((port) => ({
            port,
            path: t.path ?? '/metrics',
            interval,
            // The rules and dashboards select on `app`, as the bundled relabeling names it.
            relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name'], targetLabel: 'app' }],
          })),
        },
      });
    }

    const ruleScope = { namespace: ns };
    this.prometheusRuleName = 'fastnext-rules';
    new ApiObject(this, 'prometheus-rule', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: objectMeta(this.prometheusRuleName),
      spec: { groups: [recordingRuleGroup(ruleScope), ...shippedRuleGroups(monitored, ruleScope)] },
    });

    this.alertmanagerConfigName = 'fastnext-alerting';
    new ApiObject(this, 'alertmanager-config', {
      apiVersion: 'monitoring.coreos.com/v1alpha1',
      kind: 'AlertmanagerConfig',
      metadata: objectMeta(this.alertmanagerConfigName),
      spec: alertmanagerConfigSpec(alerting, shippedInhibitions(monitored), WATCHDOG),
    });

    const maps: Record<string, string> = {};
    for (const [short, d] of Object.entries(dashboards(monitored))) {
      const name = `grafana-dashboard-${short}`;
      new k8s.KubeConfigMap(this, `dashboard-${short}`, {
        metadata: core.meta(this, c, name, {
          labels: { ...GRAFANA_DASHBOARD_LABEL, 'fastnext.io/grafana-dashboard': short },
        }),
        data: { [`${short}.json`]: renderDashboard(scopedDashboard(d, ns)) },
      });
      maps[short] = name;
    }
    this.dashboardConfigMaps = maps;
  }
}

/** A dashboard whose every query sees only `namespace` (a Grafana shared with other namespaces). */
export function scopedDashboard(d: Dashboard, namespace: string): Dashboard {
  // Grafana's uids are unique per instance (at most 40 characters): one per namespace.
  const uid = `${d.uid}-${namespace}`;
  return {
    ...d,
    uid: uid.length <= 40 ? uid : `${d.uid.slice(0, 31)}-${createHash('sha256').update(uid).digest('hex').slice(0, 8)}`,
    title: `${d.title} (${namespace})`,
    panels: d.panels.map((p) => ({
      ...p,
      targets: p.targets.map((t) => ({ ...t, expr: withLabelMatcher(t.expr, 'namespace', namespace) })),
    })),
  };
}
