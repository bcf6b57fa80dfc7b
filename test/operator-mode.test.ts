/**
 * Operator mode in every environment: the platform ships PodMonitors, one PrometheusRule, one
 * AlertmanagerConfig and labelled dashboards for an existing prometheus-operator stack, and no
 * monitoring workload of its own. The custom resources are strict-validated against the
 * prometheus-operator CRD schemas (tools/manifests/crd-check.ts), and both modes synthesize
 * with zero schema problems and zero policy findings.
 */
import { parse } from 'yaml';
import { shippedAlertRules } from '../constructs/monitoring/alert-rules';
import { backupAlertRules } from '../constructs/postgres/backup-alerts';
import { dashboards, dashboardExpressions } from '../constructs/monitoring/dashboards';
import { GRAFANA_DASHBOARD_LABEL } from '../constructs/monitoring';
import { scopedDashboard } from '../constructs/monitoring/operator';
import { withLabelMatcher } from '../constructs/monitoring/promql';
import type { EnvironmentConfig } from '../stacks/config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects, type KubeObject } from '../stacks/synth';
import { runPolicy } from '../tools/manifests/policy/engine';
import { checkObject, checkObjects } from '../tools/manifests/schema-check';
import { metricNamesOf } from '../tools/runtime/metrics-check/promql-names';
import { shippedExpressions } from '../tools/runtime/metrics-check/used-metrics';
import { ENVS, type Obj, containersOf, find, ofKind, podTemplates, selects } from './helpers/objects';

const PROMETHEUS_NS = 'monitoring';
const operatorConfig = (env: string): EnvironmentConfig =>
  loadEnvironment(env, { monitoring: { mode: 'operator', operator: { prometheusNamespace: PROMETHEUS_NS } } });

/** Every metric name in `expr` is followed by a `{namespace="<ns>"` matcher. */
function everySelectorScoped(expr: string, ns: string): string[] {
  const unscoped: string[] = [];
  for (const name of metricNamesOf(expr)) {
    const uses = [...expr.matchAll(new RegExp(`(?<![\\w:])${name.replace(/[:]/g, '\\:')}(?![\\w:])(.{0,30})`, 'g'))];
    for (const u of uses) if (!u[1].startsWith(`{namespace="${ns}"`)) unscoped.push(`${name} in ${expr}`);
  }
  return unscoped;
}

describe.each(ENVS)('environment %s', (env) => {
  const config = operatorConfig(env);
  const objects = synthObjects(config) as Obj[];
  const bundled = synthObjects(loadEnvironment(env)) as Obj[];

  test('both modes: zero schema problems (custom resources against the CRDs) and zero policy findings', () => {
    for (const [mode, objs, c] of [
      ['operator', objects, config],
      ['bundled', bundled, loadEnvironment(env)],
    ] as const) {
      expect({ mode, schema: checkObjects(objs) }).toEqual({ mode, schema: [] });
      expect({ mode, findings: runPolicy(objs as KubeObject[], { production: c.production }).findings }).toEqual({
        mode,
        findings: [],
      });
    }
  });

  test('no Prometheus, Alertmanager, Grafana or kube-state-metrics of its own, and no ClusterRole', () => {
    const monitoringWorkloads = objects.filter(
      (o) =>
        ['StatefulSet', 'Deployment', 'Service', 'Role', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind) &&
        /^(prometheus|alertmanager|grafana|kube-state-metrics)/.test(o.metadata.name),
    );
    expect(monitoringWorkloads.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
    expect(ofKind(objects, 'ClusterRole')).toEqual([]);
  });

  test('a PodMonitor per scrape target selects pods that declare its port, labelled for the stack', () => {
    const monitors = ofKind(objects, 'PodMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual([
      'api',
      'edge',
      'pgbouncer',
      'pgbouncer-readonly',
      'postgres',
      'redis',
    ]);
    // Patroni's REST API serves its /metrics beside the exporter: the postgres monitor scrapes both.
    expect(find(objects, 'PodMonitor', 'postgres').spec.podMetricsEndpoints.map((e: Obj) => e.port)).toEqual([
      'metrics',
      'patroni',
    ]);
    const templates = podTemplates(objects).filter((t) => ['Deployment', 'StatefulSet'].includes(t.owner.kind));
    for (const m of monitors) {
      expect(m.metadata.labels).toEqual(expect.objectContaining(config.monitoring.operator.resourceLabels));
      const selected = templates.filter((t) => selects(m.spec.selector.matchLabels, t.labels));
      expect([m.metadata.name, selected.length > 0]).toEqual([m.metadata.name, true]);
      const port = m.spec.podMetricsEndpoints[0].port;
      for (const t of selected) {
        const ports = containersOf(t.spec).flatMap((c: Obj) => (c.ports ?? []).map((p: Obj) => p.name));
        expect([t.owner.metadata.name, ports]).toEqual([t.owner.metadata.name, expect.arrayContaining([port])]);
      }
      expect(m.spec.namespaceSelector).toEqual({ matchNames: [config.namespace] });
    }
  });

  test('the PrometheusRule carries the same alerts as the bundled mode (minus the bundled stack’s own health), every selector scoped to the namespace', () => {
    const rule = find(objects, 'PrometheusRule', 'fastnext-rules');
    const rules = rule.spec.groups.flatMap((g: Obj) => g.rules);
    const bundledAlerts = shippedAlertRules(loadEnvironment(env)).filter(
      (r) => !/^(Prometheus|Alertmanager)/.test(r.alert),
    );
    expect(rules.filter((r: Obj) => r.alert).map((r: Obj) => r.alert)).toEqual(bundledAlerts.map((r) => r.alert));
    for (const r of rules) {
      expect(everySelectorScoped(r.expr, config.namespace)).toEqual([]);
      expect(r.labels.namespace).toBe(config.namespace);
    }
    expect(rule.spec.groups.map((g: Obj) => g.name)).toEqual([
      'fastnext-recording',
      'fastnext-alerts',
      // Backups are on in staging and prod, off in dev.
      ...(backupAlertRules(config.postgres.backup).length ? ['fastnext-backup'] : []),
      'fastnext-availability',
      'fastnext-kubernetes',
      'fastnext-watchdog',
    ]);
  });

  test('the AlertmanagerConfig routes like the bundled alertmanager.yml, credentials by Secret reference', () => {
    const spec = find(objects, 'AlertmanagerConfig', 'fastnext-alerting').spec;
    const am = parse(find(bundled, 'Secret', 'alertmanager-config').stringData['alertmanager.yml']);
    expect(spec.route.receiver).toBe(am.route.receiver);
    expect(
      spec.route.routes.map((r: Obj) => [
        r.receiver,
        r.matchers.map((m: Obj) => `${m.name}${m.matchType}"${m.value}"`),
      ]),
    ).toEqual(am.route.routes.map((r: Obj) => [r.receiver, r.matchers]));
    expect(spec.receivers.map((r: Obj) => r.name)).toEqual(am.receivers.map((r: Obj) => r.name));
    const refs = spec.receivers.flatMap((r: Obj) =>
      Object.values(r)
        .filter(Array.isArray)
        .flatMap((configs) => (configs as Obj[]).flatMap((c) => Object.values(c).filter((v) => v?.name && v?.key))),
    );
    expect(refs.map((r: Obj) => r.name).sort()).toEqual(
      config.monitoring.alerting.receivers.map((r) => r.secretName).sort(),
    );
    expect(spec.inhibitRules.length).toBe(am.inhibit_rules.length);
  });

  test('dashboards are ConfigMaps labelled grafana_dashboard: "1", every query scoped to the namespace, uids per namespace', () => {
    const maps = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
    expect(maps.map((m) => m.metadata.name).sort()).toEqual(
      Object.keys(dashboards(config))
        .map((d) => `grafana-dashboard-${d}`)
        .sort(),
    );
    for (const m of maps) {
      expect(m.metadata.labels).toEqual(expect.objectContaining(GRAFANA_DASHBOARD_LABEL));
      const json = JSON.parse(Object.values(m.data as Record<string, string>)[0]);
      expect(json.uid.length).toBeLessThanOrEqual(40);
      expect(json.uid).toContain(env);
      for (const p of json.panels)
        for (const t of p.targets) expect(everySelectorScoped(t.expr, config.namespace)).toEqual([]);
    }
  });

  test('every tier admits the existing Prometheus (by namespace and pod labels) to its metrics port, and nothing else new', () => {
    for (const name of ['api', 'edge', 'postgres', 'pgbouncer', 'pgbouncer-readonly', 'redis']) {
      const np = find(objects, 'NetworkPolicy', name);
      const metricsRule = np.spec.ingress.find((r: Obj) =>
        r.from?.some((p: Obj) => p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === PROMETHEUS_NS),
      );
      expect([name, metricsRule?.from]).toEqual([
        name,
        [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': PROMETHEUS_NS } },
            podSelector: { matchLabels: config.monitoring.operator.prometheusPodLabels },
          },
        ],
      ]);
      // The bundled policy admits our own Prometheus pods there instead.
      const bundledRule = find(bundled, 'NetworkPolicy', name).spec.ingress.find((r: Obj) =>
        r.from?.some((p: Obj) => p.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'prometheus'),
      );
      expect(bundledRule.ports).toEqual(metricsRule.ports);
    }
  });
});

describe('strict validation of the custom resources', () => {
  const objects = synthObjects(operatorConfig('prod')) as Obj[];
  const clone = (o: Obj) => JSON.parse(JSON.stringify(o)) as Obj;

  test('fails when a PodMonitor has a field the CRD does not define', () => {
    const m = clone(find(objects, 'PodMonitor', 'api'));
    m.spec.podMetricsEndpoints[0].scrapeInterval = '15s';
    expect(checkObject(m)).toEqual([
      expect.objectContaining({
        path: 'spec.podMetricsEndpoints[0].scrapeInterval',
        message: expect.stringMatching(/^unknown field 'scrapeInterval' \(not in the CRD schema; allowed: .*interval/),
      }),
    ]);
  });

  test('fails when a field has the wrong type or an enum value the CRD refuses', () => {
    const m = clone(find(objects, 'AlertmanagerConfig', 'fastnext-alerting'));
    m.spec.route.routes[0].matchers[0].matchType = '==';
    m.spec.route.groupBy = 'alertname';
    const paths = checkObject(m).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['spec.route.routes[0].matchers[0].matchType', 'spec.route.groupBy']));
  });

  test('fails on a typo inside an AlertmanagerConfig child route (a field the CRD leaves open, checked as a route)', () => {
    const m = clone(find(objects, 'AlertmanagerConfig', 'fastnext-alerting'));
    m.spec.route.routes[1].recevier = 'chat';
    expect(checkObject(m).map((p) => [p.path, p.message.split(' (')[0]])).toEqual([
      ['spec.route.routes[1].recevier', "unknown field 'recevier'"],
    ]);
  });

  test('fails when a PrometheusRule rule has a misspelled field', () => {
    const m = clone(find(objects, 'PrometheusRule', 'fastnext-rules'));
    m.spec.groups[1].rules[0].annotation = {};
    expect(checkObject(m).map((p) => p.path)).toEqual(['spec.groups[1].rules[0].annotation']);
  });

  test('fails on a kind the prometheus-operator CRDs do not have', () => {
    expect(
      checkObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitors', metadata: { name: 'x' } }),
    ).toEqual([
      {
        object: 'PodMonitors x',
        path: 'kind',
        message: 'monitoring.coreos.com/v1 PodMonitors is not a kind of the prometheus-operator CRDs',
      },
    ]);
  });
});

describe('scoping PromQL to a namespace', () => {
  test('every shipped rule and dashboard expression keeps its metric names, each selector gaining the matcher', () => {
    const config = loadEnvironment('prod');
    const expressions = [
      ...shippedExpressions(config).map((e) => e.expr),
      ...Object.values(dashboards(config)).flatMap((d) =>
        dashboardExpressions(scopedDashboard(d, 'ns')).map((e) => e.expr),
      ),
    ];
    expect(expressions.length).toBeGreaterThan(50);
    for (const expr of expressions) {
      const scoped = expr.includes('namespace="ns"') ? expr : withLabelMatcher(expr, 'namespace', 'ns');
      expect(metricNamesOf(scoped)).toEqual(metricNamesOf(expr));
      expect(everySelectorScoped(scoped, 'ns')).toEqual([]);
    }
  });

  test('adds the matcher to bare and labelled selectors, leaves functions, grouping labels, strings and durations alone', () => {
    expect(
      withLabelMatcher(
        'sum by (instance) (rate(x_total{code=~"5..",a="b{c}"}[5m] offset 1m)) / on (instance) group_left max(y) > 0.5 and vector(1)',
        'namespace',
        'ns',
      ),
    ).toBe(
      'sum by (instance) (rate(x_total{namespace="ns",code=~"5..",a="b{c}"}[5m] offset 1m)) / on (instance) group_left max(y{namespace="ns"}) > 0.5 and vector(1)',
    );
  });

  test('fails when a selector already matches on the label', () => {
    expect(() => withLabelMatcher('up{namespace="other"}', 'namespace', 'ns')).toThrow(
      `'up' already matches on 'namespace' in: up{namespace="other"}`,
    );
  });
});
