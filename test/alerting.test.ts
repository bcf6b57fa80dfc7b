/**
 * Alerts that reach a person, in every environment (no servers: the real Alertmanager and
 * amtool runs are in alertmanager.test.ts, the end-to-end delivery in alert-delivery.test.ts):
 * - every alert has summary, description and a runbook_url whose section exists in docs/runbooks.md;
 * - the config Secret holds exactly the rendered alertmanager.yml, with every credential read
 *   from a mounted Secret file and none written in it;
 * - Prometheus sends to every Alertmanager replica; the StatefulSet, PDB, probes and policies;
 * - kube-state-metrics with a namespaced Role; the kubelet scrape's ClusterRole, and both off;
 * - bad input refused at synth with field, value and fix.
 */
import { parse } from 'yaml';
import { runbookAnchor, shippedAlertRules, shippedInhibitions } from '../constructs/monitoring/alert-rules';
import { ALERTMANAGER_SECRETS_DIR } from '../constructs/monitoring/alerting';
import { renderAlertmanagerConfig } from '../constructs/monitoring/alertmanager-config';
import { Testing } from 'cdk8s';
import { ALERTING_DEFAULTS, Alertmanager, KUBELET_RULES, OperatorMonitoring } from '../constructs/monitoring';
import { KUBE_STATE_METRICS, WATCHDOG } from '../constructs/monitoring/health-alerts';
import { ConfigError, type EnvironmentConfig } from '../stacks/config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { ENVS, type Obj, find, objectsOf, ofKind } from './helpers/objects';
import { docAnchors } from './helpers/docs';

/** GitHub's anchors of the runbook's `## ` headings. */
const anchors = docAnchors('runbooks.md', 2);

function errorFor(env: string, extra: object): string {
  try {
    loadEnvironment(env, extra);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const operator = (env: string): EnvironmentConfig =>
  loadEnvironment(env, { monitoring: { mode: 'operator', operator: { prometheusNamespace: 'monitoring' } } });

describe.each(ENVS)('environment %s', (env) => {
  const config = loadEnvironment(env);
  const objects = objectsOf(env);

  test.each(['bundled', 'operator'])(
    'every %s alert has a summary, a description and a runbook section that exists',
    (mode) => {
      const c = mode === 'bundled' ? config : operator(env);
      const rules = shippedAlertRules(c);
      expect(rules.length).toBeGreaterThan(20);
      for (const r of rules) {
        expect([r.alert, typeof r.annotations.summary, typeof r.annotations.description]).toEqual([
          r.alert,
          'string',
          'string',
        ]);
        expect(r.annotations.summary.length).toBeGreaterThan(10);
        expect(r.annotations.runbook_url).toBe(`${c.monitoring.runbookUrl}#${runbookAnchor(r.alert)}`);
        expect([r.alert, anchors.has(runbookAnchor(r.alert))]).toEqual([r.alert, true]);
      }
    },
  );

  test('the config Secret holds exactly the rendered alertmanager.yml; every credential is a *_file in a mounted Secret', () => {
    const secret = find(objects, 'Secret', 'alertmanager-config');
    const text = secret.stringData['alertmanager.yml'];
    expect(text).toBe(
      renderAlertmanagerConfig(config.monitoring.alerting as never, shippedInhibitions(config), WATCHDOG),
    );
    const doc = parse(text);
    const sts = find(objects, 'StatefulSet', 'alertmanager');
    const projected = sts.spec.template.spec.volumes.find((v: Obj) => v.name === 'receiver-secrets').projected.sources;
    const mounted = new Set<string>(
      projected.flatMap((s: Obj) => s.secret.items.map((i: Obj) => `${ALERTMANAGER_SECRETS_DIR}/${i.path}`)),
    );
    const files: string[] = [];
    for (const r of doc.receivers) {
      for (const [key, configs] of Object.entries(r).filter(([k]) => k.endsWith('_configs'))) {
        for (const c of configs as Obj[]) {
          // No inline credential: no URL, key or password field, only their *_file form.
          expect(Object.keys(c).filter((k) => /^(url|api_url|routing_key|service_key|auth_password)$/.test(k))).toEqual(
            [],
          );
          files.push(
            ...Object.entries(c)
              .filter(([k]) => k.endsWith('_file'))
              .map(([, v]) => v as string),
          );
        }
        expect(key).toMatch(/^(webhook|slack|pagerduty|email)_configs$/);
      }
    }
    expect(files.length).toBe(config.monitoring.alerting.receivers.length);
    for (const f of files) expect([f, mounted.has(f)]).toEqual([f, true]);
    // Optional: a receiver whose Secret is not created yet does not keep the pod from starting.
    expect(projected.every((s: Obj) => s.secret.optional === true)).toBe(true);
    // And the policy checks know these Secrets come from outside.
    expect(sts.metadata.annotations!['fastnext.io/external-secrets'].split(',')).toEqual(
      expect.arrayContaining(config.monitoring.alerting.receivers.map((r) => r.secretName)),
    );
  });

  test('the default routes: page, ticket and the Watchdog to the configured receivers, inhibit rules from the alert rules', () => {
    const doc = parse(find(objects, 'Secret', 'alertmanager-config').stringData['alertmanager.yml']);
    const d = config.monitoring.alerting.defaultReceivers;
    expect(doc.route.receiver).toBe(d.ticket);
    expect(doc.route.routes.map((r: Obj) => [r.receiver, r.matchers])).toEqual([
      [d.watchdog, ['alertname="Watchdog"']],
      [d.page, ['severity="page"']],
      [d.ticket, ['severity="ticket"']],
    ]);
    expect(doc.route.group_wait).toBe(config.monitoring.alerting.groupWait);
    expect(doc.route.repeat_interval).toBe(config.monitoring.alerting.repeatInterval);
    expect(doc.inhibit_rules).toContainEqual({
      source_matchers: ['alertname="RedisNodeDown"'],
      target_matchers: ['alertname=~"ServerUnreachableFromExporter|TargetDown"'],
      equal: ['namespace', 'pod'],
    });
    // Every alert an inhibit rule names is shipped (no rule refers to an alert that cannot fire).
    const alerts = new Set(shippedAlertRules(config).map((r) => r.alert));
    for (const i of shippedInhibitions(config))
      for (const a of [i.source, ...i.targets]) expect([a, alerts.has(a)]).toEqual([a, true]);
  });

  test('Prometheus sends alerts to every Alertmanager replica by its stable name, and may reach port 9093', () => {
    const prometheus = parse(find(objects, 'ConfigMap', 'prometheus-config').data['prometheus.yml']);
    const replicas = config.monitoring.alertmanager.replicas;
    expect(prometheus.alerting.alertmanagers).toEqual([
      {
        static_configs: [
          {
            targets: Array.from(
              { length: replicas },
              (_, i) => `alertmanager-${i}.alertmanager-headless.${config.namespace}.svc:9093`,
            ),
          },
        ],
      },
    ]);
    const headless = find(objects, 'Service', 'alertmanager-headless');
    expect([headless.spec.clusterIP, headless.spec.publishNotReadyAddresses]).toEqual(['None', true]);
    const egress = find(objects, 'NetworkPolicy', 'prometheus').spec.egress;
    expect(egress).toContainEqual({
      to: [{ podSelector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/name': 'alertmanager' }) } }],
      ports: [{ protocol: 'TCP', port: 9093 }],
    });
  });

  test('Alertmanager: StatefulSet "alertmanager" with PVC "data", clustered when it has replicas, a PDB, probes, its policy', () => {
    const sts = find(objects, 'StatefulSet', 'alertmanager');
    const replicas = config.monitoring.alertmanager.replicas;
    expect([sts.spec.replicas, sts.spec.serviceName, sts.spec.volumeClaimTemplates[0].metadata.name]).toEqual([
      replicas,
      'alertmanager-headless',
      'data',
    ]);
    const [am] = sts.spec.template.spec.containers;
    const peers = am.args.filter((a: string) => a.startsWith('--cluster.peer='));
    expect(peers).toHaveLength(replicas > 1 ? replicas : 0);
    if (replicas === 1) expect(am.args).toContain('--cluster.listen-address=');
    expect([am.readinessProbe.httpGet.path, am.livenessProbe.httpGet.path]).toEqual(['/-/ready', '/-/healthy']);
    expect(find(objects, 'PodDisruptionBudget', 'alertmanager').spec.maxUnavailable).toBe(1);
    const np = find(objects, 'NetworkPolicy', 'alertmanager');
    expect(np.spec.ingress[0]).toEqual({
      from: [{ podSelector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/name': 'prometheus' }) } }],
      ports: [{ protocol: 'TCP', port: 9093 }],
    });
    // Receivers are outside the cluster: HTTPS to any address (the defaults are Slack, PagerDuty and webhooks).
    expect(np.spec.egress).toContainEqual({ ports: [{ protocol: 'TCP', port: 443 }] });
  });

  test('kube-state-metrics watches pods of this namespace only, with a Role (no ClusterRole), and exports only what the rules use', () => {
    const d = find(objects, 'Deployment', 'kube-state-metrics');
    const args: string[] = d.spec.template.spec.containers[0].args;
    expect(args).toEqual(
      expect.arrayContaining([
        `--namespaces=${config.namespace}`,
        '--resources=pods',
        `--metric-allowlist=${Object.values(KUBE_STATE_METRICS).join(',')}`,
      ]),
    );
    expect(find(objects, 'Role', 'kube-state-metrics').rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
    ]);
    expect(d.spec.template.metadata.annotations?.['prometheus.io/scrape']).toBeUndefined();
  });

  test('the kubelet scrape: one ClusterRole (list/watch nodes, get nodes/metrics; not nodes/proxy), named for the namespace', () => {
    const roles = ofKind(objects, 'ClusterRole');
    expect(roles.map((r) => [r.metadata.name, r.metadata.namespace, r.rules])).toEqual([
      [`${config.namespace}-prometheus-kubelet`, undefined, KUBELET_RULES],
    ]);
    expect(ofKind(objects, 'ClusterRoleBinding').map((b) => [b.roleRef.name, b.subjects])).toEqual([
      [
        `${config.namespace}-prometheus-kubelet`,
        [{ kind: 'ServiceAccount', name: 'prometheus', namespace: config.namespace }],
      ],
    ]);
    const job = parse(find(objects, 'ConfigMap', 'prometheus-config').data['prometheus.yml']).scrape_configs.find(
      (j: Obj) => j.job_name === 'kubelet',
    );
    expect(job.metric_relabel_configs).toContainEqual({
      source_labels: ['namespace'],
      action: 'keep',
      regex: config.namespace,
    });
  });
});

test('kube-state-metrics and the kubelet scrape off: no ClusterRole, no Deployment, and none of their alerts', () => {
  const config = loadEnvironment('prod', {
    monitoring: { kubeStateMetrics: { enabled: false }, kubelet: { enabled: false } },
  });
  const objects = synthObjects(config) as Obj[];
  expect(ofKind(objects, 'ClusterRole')).toEqual([]);
  expect(ofKind(objects, 'ClusterRoleBinding')).toEqual([]);
  expect(objects.filter((o) => o.metadata.name === 'kube-state-metrics')).toEqual([]);
  const alerts = shippedAlertRules(config).map((r) => r.alert);
  expect(alerts).not.toContain('KubePodCrashLooping');
  expect(alerts).not.toContain('PersistentVolumeFillingUp');
  expect(
    parse(find(objects, 'ConfigMap', 'prometheus-config').data['prometheus.yml']).scrape_configs.map(
      (j: Obj) => j.job_name,
    ),
  ).toEqual(['prometheus', 'kubernetes-pods', 'kubernetes-service-endpoints']);
});

describe('bad input is refused at synth, naming field, value and fix', () => {
  test('fails when a route names a receiver that does not exist', () => {
    expect(
      errorFor('prod', { monitoring: { alerting: { routes: [{ matchers: ['team="db"'], receiver: 'oncall' }] } } }),
    ).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - monitoring.alerting.routes.0.receiver: "oncall" names no receiver; receivers are: pager, chat, deadmans-switch (add it to receivers or fix the name)',
    );
  });

  test('fails when a default receiver does not exist', () => {
    expect(errorFor('prod', { monitoring: { alerting: { defaultReceivers: { page: 'pagerduty' } } } })).toContain(
      'monitoring.alerting.defaultReceivers.page: "pagerduty" names no receiver; receivers are: pager, chat, deadmans-switch',
    );
  });

  test('fails when a receiver has no Secret name', () => {
    expect(
      errorFor('prod', {
        monitoring: {
          alerting: {
            receivers: [
              { name: 'pager', type: 'pagerduty' },
              { name: 'chat', type: 'slack', secretName: 's' },
              { name: 'deadmans-switch', type: 'webhook', secretName: 'w' },
            ],
          },
        },
      }),
    ).toBe(
      "Invalid config for environment 'prod':\n" +
        "  - monitoring.alerting.receivers.0.secretName: (missing) is required: name the Secret that holds the PagerDuty Events v2 routing key under key 'routing-key' (kubectl create secret generic <name> --from-literal=routing-key=...); credentials are never written in config",
    );
  });

  test('fails when a receiver type is unknown', () => {
    const receivers = [
      { name: 'pager', type: 'opsgenie', secretName: 'og' },
      { name: 'chat', type: 'slack', secretName: 's' },
      { name: 'deadmans-switch', type: 'webhook', secretName: 'w' },
    ];
    expect(errorFor('prod', { monitoring: { alerting: { receivers } } })).toContain(
      'monitoring.alerting.receivers.0.type: "opsgenie" must be one of "webhook", "slack", "pagerduty", "email"',
    );
  });

  test('fails when a matcher is malformed', () => {
    expect(
      errorFor('prod', { monitoring: { alerting: { routes: [{ matchers: ['team=db'], receiver: 'chat' }] } } }),
    ).toContain(
      'monitoring.alerting.routes.0.matchers.0: "team=db" must be an Alertmanager matcher such as \'severity="page"\' or \'alertname=~"Redis.*"\'',
    );
  });

  test('fails when an email receiver lacks its server, and when a duration is malformed', () => {
    const message = errorFor('prod', {
      monitoring: {
        alerting: {
          groupWait: '30 seconds',
          receivers: [
            { name: 'pager', type: 'email', secretName: 'smtp', to: 'oncall@example.com', from: 'am@example.com' },
            { name: 'chat', type: 'slack', secretName: 's' },
            { name: 'deadmans-switch', type: 'webhook', secretName: 'w' },
          ],
        },
      },
    });
    expect(message).toContain(
      "monitoring.alerting.receivers.0.smarthost: (missing) must be the SMTP server as 'host:port', e.g. 'smtp.example.com:587'",
    );
    expect(message).toContain(
      "monitoring.alerting.groupWait: \"30 seconds\" must be a duration such as '30s', '5m' or '4h'",
    );
  });

  test('fails when the mode is unknown', () => {
    expect(errorFor('staging', { monitoring: { mode: 'kube-prometheus' } })).toBe(
      "Invalid config for environment 'staging':\n" +
        '  - monitoring.mode: "kube-prometheus" must be one of "bundled", "operator"',
    );
  });

  test('fails when operator mode does not name the Prometheus namespace', () => {
    expect(errorFor('dev', { monitoring: { mode: 'operator' } })).toBe(
      "Invalid config for environment 'dev':\n" +
        "  - monitoring.operator.prometheusNamespace: (missing) is required in operator mode: name the namespace of the existing Prometheus (e.g. 'monitoring'), whose pods the NetworkPolicies then admit to the metrics ports",
    );
  });
});

describe('the constructs check their alerting props themselves (no environment config)', () => {
  test('fails when a route names a receiver that does not exist, naming the prop path', () => {
    const chart = Testing.chart();
    expect(
      () =>
        new Alertmanager(chart, 'am', {
          alerting: { ...ALERTING_DEFAULTS, routes: [{ matchers: ['team="db"'], receiver: 'oncall' }] },
        }),
    ).toThrow(
      "'alerting.routes[0].receiver' (oncall) names no receiver; receivers are: pager, chat, deadmans-switch (add it to receivers or fix the name)",
    );
  });

  test('fails when a receiver has no Secret name, in operator mode too', () => {
    const chart = Testing.chart();
    const receivers = [{ ...ALERTING_DEFAULTS.receivers[0], secretName: '' }, ...ALERTING_DEFAULTS.receivers.slice(1)];
    expect(
      () =>
        new OperatorMonitoring(chart, 'm', {
          monitored: loadEnvironment('dev'),
          scrapeTargets: [{ component: 'api' }],
          alerting: { ...ALERTING_DEFAULTS, receivers },
        }),
    ).toThrow(/^'alerting\.receivers\[0\]\.secretName' \(\) is required: name the Secret that holds the PagerDuty/);
  });
});
