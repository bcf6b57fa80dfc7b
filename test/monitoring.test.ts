/**
 * Invariants of the observability tier in every environment: scrape annotations
 * on every metrics port, RBAC limited to the discovery verbs, dashboards under
 * the annotation limit, and the ConfigMaps holding exactly the rendered bytes
 * that test/promtool.test.ts runs through promtool.
 */
import { Testing } from 'cdk8s';
import { parse } from 'yaml';
import { renderAlertRules, renderRecordingRules } from '../constructs/monitoring/alert-rules';
import { dashboards, renderDashboard } from '../constructs/monitoring/dashboards';
import { PROMETHEUS_FILES, renderPrometheusConfig } from '../constructs/monitoring/prometheus-config';
import { DASHBOARD_CONFIGMAP_LIMIT_BYTES, DISCOVERY_RULE, KUBELET_RULES, Monitoring } from '../constructs/monitoring';
import { RULE_COMPONENTS } from '../constructs/monitoring/alert-rules';
import { loadEnvironment } from '../stacks/environments';
import { buildPlatform, synthObjects } from '../stacks/synth';
import { ENVS, type Obj, containersOf, find, generatorJob, objectsOf, ofKind, podTemplates } from './helpers/objects';

describe.each(ENVS)('environment %s', (env) => {
  const config = loadEnvironment(env);
  const objects = objectsOf(env);

  test('every pod with a metrics port carries scrape annotations for that port and path', () => {
    const templates = podTemplates(objects);
    const withMetrics = templates.filter((t) => containersOf(t.spec).some((c) => portNamed(c, 'metrics')));
    expect(withMetrics.length).toBeGreaterThanOrEqual(2);
    for (const t of withMetrics) {
      const annotations = t.annotations;
      const ports = containersOf(t.spec).flatMap((c) =>
        portNamed(c, 'metrics') ? [String(portNamed(c, 'metrics'))] : [],
      );
      expect([t.owner.metadata.name, annotations['prometheus.io/scrape'], annotations['prometheus.io/path']]).toEqual([
        t.owner.metadata.name,
        'true',
        expect.stringMatching(/^\//),
      ]);
      expect(ports).toContain(annotations['prometheus.io/port']);
    }
  });

  test('the rules select components that exist (api and edge pods)', () => {
    const names = podTemplates(objects).map((t) => t.labels['app.kubernetes.io/name']);
    expect(names).toEqual(expect.arrayContaining([RULE_COMPONENTS.api, RULE_COMPONENTS.edge]));
  });

  test('RBAC: Prometheus gets one Role with get/list/watch on pods, endpoints and services; its one ClusterRole is the kubelet scrape’s', () => {
    expect(ofKind(objects, 'ClusterRole').map((r) => r.rules)).toEqual([KUBELET_RULES]);
    expect(ofKind(objects, 'ClusterRoleBinding').map((b) => b.subjects)).toEqual([
      [{ kind: 'ServiceAccount', name: 'prometheus', namespace: config.namespace }],
    ]);
    const role = find(objects, 'Role', 'prometheus-discovery');
    for (const rule of role.rules) {
      expect(rule.apiGroups).toEqual(['']);
      expect(DISCOVERY_RULE.resources).toEqual(expect.arrayContaining(rule.resources));
      expect(['get', 'list', 'watch']).toEqual(expect.arrayContaining(rule.verbs));
      expect(rule.resourceNames).toBeUndefined();
    }
    // Nothing else is bound to Prometheus' ServiceAccount.
    const bound = ofKind(objects, 'RoleBinding').filter((b) =>
      b.subjects.some((s: Obj) => s.kind === 'ServiceAccount' && s.name === 'prometheus'),
    );
    expect(bound.map((b) => b.roleRef)).toEqual([
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'prometheus-discovery' },
    ]);
  });

  test('Prometheus mounts its ServiceAccount token (discovery); Grafana does not', () => {
    const token = (kind: string, name: string) => {
      const spec = find(objects, kind, name).spec.template.spec;
      return [spec.serviceAccountName, spec.automountServiceAccountToken];
    };
    expect(token('StatefulSet', 'prometheus')).toEqual(['prometheus', true]);
    expect(token('Deployment', 'grafana')).toEqual(['grafana', false]);
  });

  test('every dashboard is its own ConfigMap, well under the 256 KiB annotation limit', () => {
    const maps = ofKind(objects, 'ConfigMap').filter((c) => c.metadata.name.startsWith('grafana-dashboard-'));
    expect(maps.map((m) => m.metadata.name).sort()).toEqual(
      ['edge', 'overview', 'postgres', 'redis'].map((n) => `grafana-dashboard-${n}`),
    );
    for (const m of maps) {
      // kubectl apply copies the whole object into an annotation: measure the object, not only the data.
      expect(Buffer.byteLength(JSON.stringify(m))).toBeLessThan(DASHBOARD_CONFIGMAP_LIMIT_BYTES / 2);
      expect(Object.keys(m.data)).toHaveLength(1);
    }
  });

  test('every panel queries the provisioned datasource, with unique ids, inside the 24-column grid', () => {
    const provisioned = parse(find(objects, 'ConfigMap', 'grafana-provisioning').data['datasource-prometheus.yaml']);
    const uid = provisioned.datasources[0].uid;
    for (const short of ['overview', 'edge', 'postgres', 'redis']) {
      const json = JSON.parse(find(objects, 'ConfigMap', `grafana-dashboard-${short}`).data[`${short}.json`]);
      const ids = json.panels.map((p: Obj) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const p of json.panels) {
        expect([p.title, p.datasource.uid, ...p.targets.map((t: Obj) => t.datasource.uid)]).toEqual([
          p.title,
          ...Array(1 + p.targets.length).fill(uid),
        ]);
        expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      }
    }
  });

  test('the ConfigMaps hold exactly the rendered prometheus.yml, rules and dashboards', () => {
    const { platform } = buildPlatform(config);
    expect(find(objects, 'ConfigMap', 'prometheus-config').data).toEqual({
      [PROMETHEUS_FILES.config]: renderPrometheusConfig({
        ...config,
        alertmanagers: platform.monitoring!.alertmanager.replicaAddresses,
        kubeStateMetrics: { component: 'kube-state-metrics', portName: 'http-metrics' },
        scrapeKubelets: config.monitoring.kubelet.enabled,
      }),
      [PROMETHEUS_FILES.recordingRules]: renderRecordingRules(),
      [PROMETHEUS_FILES.alertRules]: renderAlertRules(config),
    });
    for (const [short, d] of Object.entries(dashboards(config))) {
      expect(find(objects, 'ConfigMap', `grafana-dashboard-${short}`).data[`${short}.json`]).toBe(renderDashboard(d));
    }
  });

  test('Prometheus: StatefulSet "prometheus" with PVC "data" (names pinned: renaming replaces data), retention and reload', () => {
    const sts = find(objects, 'StatefulSet', 'prometheus');
    expect(sts.spec.volumeClaimTemplates.map((v: Obj) => [v.metadata.name, v.spec.resources.requests.storage])).toEqual(
      [['data', config.monitoring.prometheus.storage.size]],
    );
    const [prom, reload] = sts.spec.template.spec.containers;
    expect(prom.args).toContain(`--storage.tsdb.retention.time=${config.monitoring.prometheus.retention}`);
    expect(prom.args).toContain('--config.file=/etc/prometheus/config/prometheus.yml');
    expect(reload.args).toEqual(
      expect.arrayContaining(['--volume-dir=/etc/prometheus/config', '--webhook-url=http://127.0.0.1:9090/-/reload']),
    );
    expect(find(objects, 'Service', sts.spec.serviceName).spec.clusterIP).toBe('None');
  });

  test('Prometheus accepts queries only from Grafana and may reach every metrics port it scrapes', () => {
    const np = find(objects, 'NetworkPolicy', 'prometheus');
    expect(np.spec.ingress).toEqual([
      {
        from: [{ podSelector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/name': 'grafana' }) } }],
        ports: [{ protocol: 'TCP', port: 9090 }],
      },
    ]);
    const egressTo = (component: string) =>
      np.spec.egress
        .filter((e: Obj) =>
          e.to?.some((p: Obj) => p.podSelector?.matchLabels?.['app.kubernetes.io/name'] === component),
        )
        .flatMap((e: Obj) => e.ports.map((p: Obj) => p.port));
    for (const t of podTemplates(objects)) {
      const component = t.labels['app.kubernetes.io/name'];
      for (const c of containersOf(t.spec)) {
        const port = portNamed(c, 'metrics');
        if (port) expect([component, egressTo(component)]).toEqual([component, expect.arrayContaining([port])]);
      }
    }
  });

  test('Grafana: read-only root fs, writable paths on emptyDirs, admin password from the Secret, dashboards projected', () => {
    const dep = find(objects, 'Deployment', 'grafana');
    const spec = dep.spec.template.spec;
    const [grafana] = spec.containers;
    expect(grafana.securityContext.readOnlyRootFilesystem).toBe(true);
    const volume = (name: string) => spec.volumes.find((v: Obj) => v.name === name);
    for (const path of ['/var/lib/grafana', '/var/log/grafana', '/tmp']) {
      const mount = grafana.volumeMounts.find((m: Obj) => m.mountPath === path);
      expect([path, volume(mount.name).emptyDir]).toEqual([path, expect.any(Object)]);
    }
    expect(volume('admin').secret.secretName).toBe(config.monitoring.grafana.adminSecret);
    // The Secret is generated in-cluster once (never in the output), with both keys Grafana reads.
    const generator = generatorJob(objects, config.monitoring.grafana.adminSecret);
    expect(generator.metadata.annotations?.['fastnext.io/creates-secrets']).toBe(config.monitoring.grafana.adminSecret);
    expect(JSON.stringify(generator.spec.template.spec.containers[0].env)).toContain('admin-user admin-password');
    expect(ofKind(objects, 'Secret').map((x) => x.metadata.name)).not.toContain(config.monitoring.grafana.adminSecret);
    const env = Object.fromEntries(grafana.env.map((e: Obj) => [e.name, e.value]));
    expect(env.GF_SECURITY_ADMIN_PASSWORD__FILE).toBe('/etc/grafana/admin/admin-password');
    expect(
      volume('dashboards')
        .projected.sources.map((s: Obj) => s.configMap.name)
        .sort(),
    ).toEqual(['edge', 'overview', 'postgres', 'redis'].map((n) => `grafana-dashboard-${n}`));
    const ds = find(objects, 'ConfigMap', 'grafana-provisioning').data['datasource-prometheus.yaml'];
    expect(ds).toContain(`url: http://prometheus.${config.namespace}.svc:9090`);
  });
});

test('monitoring.enabled: false leaves Prometheus, Alertmanager, Grafana and kube-state-metrics out', () => {
  const objects = synthObjects(loadEnvironment('dev', { monitoring: { enabled: false } })) as Obj[];
  const names = objects.map((o) => o.metadata.labels?.['app.kubernetes.io/name']);
  for (const c of ['prometheus', 'alertmanager', 'grafana', 'kube-state-metrics', 'monitoring'])
    expect(names).not.toContain(c);
  expect(ofKind(objects, 'ClusterRole')).toEqual([]);
  expect(ofKind(objects, 'Role').map((r) => r.metadata.name)).not.toContain('prometheus-discovery');
});

test('fails when a scrape target port is out of range', () => {
  const chart = Testing.chart();
  expect(
    () =>
      new Monitoring(chart, 'm', {
        monitored: loadEnvironment('dev'),
        scrapeTargets: [{ component: 'api', port: 70000 }],
      }),
  ).toThrow("'scrapeTargets' port of 'api' (70000) must be an integer in 1..65535");
});

function portNamed(container: Obj, name: string): number | undefined {
  return (container.ports ?? []).find((p: Obj) => p.name === name)?.containerPort;
}
