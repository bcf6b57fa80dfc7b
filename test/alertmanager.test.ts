/**
 * Alertmanager on the real binaries (Debian 13's alertmanager and amtool 0.28.1, the pinned
 * image's version), fed the alertmanager.yml bytes of the synthesized config Secret:
 * - `amtool check-config` accepts every environment's config, and one using every receiver type;
 * - the route tree sends each severity where the config says (`amtool config routes test`);
 * - prod's StatefulSet args form a two-replica cluster over the mesh port, its probe paths answer,
 *   and an alert sent to both replicas (as Prometheus does) is notified once;
 * - delivery to loopback receivers (webhook and Slack payloads, with the runbook link);
 * - inhibition: a node down holds back the alerts the rules say it makes redundant;
 * - a receiver whose Secret does not exist fails its notifications, the pod keeps serving.
 *
 * Test-only config (stated where used): receivers pointed at the loopback sink and
 * `groupWait: '1s'`; routes and inhibit rules are the shipped ones.
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { shippedInhibitions } from '../constructs/monitoring/alert-rules';
import { ALERTMANAGER_CONFIG_FILE } from '../constructs/monitoring/alertmanager';
import type { EnvironmentConfig } from '../stacks/config';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import {
  AlertSink,
  alertmanagerOf,
  AMTOOL_BIN,
  type RunningAlertmanagers,
  sinkSecrets,
  startAlertmanagers,
} from '../tools/runtime/alertmanager';

jest.setTimeout(90000);

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function amtool(config: string, ...args: string[]): { status: number | null; output: string; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'amtool-'));
  dirs.push(dir);
  const file = join(dir, ALERTMANAGER_CONFIG_FILE);
  writeFileSync(file, config);
  const r = spawnSync(AMTOOL_BIN, [...args.map((a) => a.replace('$CONFIG', file))], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`, stdout: r.stdout };
}

const configOf = (env: EnvironmentConfig) => alertmanagerOf(synthObjects(env)).config;

/** A receiver of every type, a route of our own and an inhibit rule of our own, on prod. */
const everyReceiver = loadEnvironment('prod', {
  monitoring: {
    alerting: {
      receivers: [
        { name: 'pager', type: 'pagerduty', secretName: 'pd' },
        { name: 'chat', type: 'slack', secretName: 'slack', channel: '#alerts' },
        { name: 'deadmans-switch', type: 'webhook', secretName: 'dms', port: 8443, sendResolved: false },
        {
          name: 'dba',
          type: 'email',
          secretName: 'smtp',
          to: 'dba@example.com',
          from: 'am@example.com',
          smarthost: 'smtp.example.com:587',
        },
      ],
      routes: [{ matchers: ['app="postgres"', 'severity=~"page|ticket"'], receiver: 'dba', continue: true }],
      inhibitRules: [
        {
          sourceMatchers: ['alertname="RedisClusterStateNotOk"'],
          targetMatchers: ['app="redis"'],
          equal: ['namespace'],
        },
      ],
    },
  },
});

describe('amtool check-config', () => {
  test('amtool is the 0.28 build of the pinned image', () => {
    expect(spawnSync(AMTOOL_BIN, ['--version'], { encoding: 'utf8' }).stdout + '').toMatch(/version 0\.28\.1/);
  });

  test.each(environmentNames())('accepts the alertmanager.yml of %s (the Secret’s bytes)', (name) => {
    const env = loadEnvironment(name);
    const r = amtool(configOf(env), 'check-config', '$CONFIG');
    expect(r.output).toContain('SUCCESS');
    expect(r.output).toContain(`${env.monitoring.alerting.receivers.length} receivers`);
    expect(r.output).toContain(`${shippedInhibitions(env).length} inhibit rules`);
    expect(r.status).toBe(0);
  });

  test('accepts every receiver type (webhook, Slack, PagerDuty, email) with a route and an inhibit rule of our own', () => {
    const r = amtool(configOf(everyReceiver), 'check-config', '$CONFIG');
    expect(r.output).toContain('4 receivers');
    expect(r.output).toContain(`${shippedInhibitions(everyReceiver).length + 1} inhibit rules`);
    expect(r.status).toBe(0);
  });

  test('fails when the config names a receiver that does not exist (what the schema refuses first)', () => {
    const broken = configOf(everyReceiver).replace('receiver: dba', 'receiver: nobody');
    const r = amtool(broken, 'check-config', '$CONFIG');
    expect(r.status).toBe(1);
    expect(r.output).toContain('undefined receiver "nobody"');
  });
});

describe('the route tree (amtool config routes test)', () => {
  const routed = (config: string, ...labels: string[]) =>
    amtool(config, 'config', 'routes', 'test', '--config.file=$CONFIG', ...labels).stdout.trim();

  test.each(environmentNames())(
    '%s: page to the pager, ticket to the chat, the Watchdog to the dead man’s switch',
    (name) => {
      const env = loadEnvironment(name);
      const config = configOf(env);
      const d = env.monitoring.alerting.defaultReceivers;
      expect(routed(config, 'alertname=RedisNodeDown', 'severity=page')).toBe(d.page);
      expect(routed(config, 'alertname=ApiPodDown', 'severity=ticket')).toBe(d.ticket);
      expect(routed(config, 'alertname=Watchdog', 'severity=none')).toBe(d.watchdog);
      // Anything unmatched reaches a person too: the chat.
      expect(routed(config, 'alertname=Unknown')).toBe(d.ticket);
    },
  );

  test('a route of our own comes before the defaults, and `continue` lets the default route see it too', () => {
    const config = configOf(everyReceiver);
    expect(routed(config, 'alertname=PostgresReplicaMissing', 'app=postgres', 'severity=page')).toBe('dba,pager');
    expect(routed(config, 'alertname=RedisNodeDown', 'app=redis', 'severity=page')).toBe('pager');
  });
});

/** An alert as Prometheus posts it (`POST /api/v2/alerts`). */
const alert = (name: string, labels: Record<string, string>, severity = 'ticket') => ({
  labels: { alertname: name, severity, namespace: 'fastnext-prod', ...labels },
  annotations: {
    summary: `${name} summary`,
    description: `${name} description`,
    runbook_url: `https://runbooks/#${name.toLowerCase()}`,
  },
  startsAt: new Date().toISOString(),
});

async function post(url: string, alerts: unknown[]): Promise<void> {
  const r = await fetch(`${url}/api/v2/alerts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(alerts),
  });
  expect(r.status).toBe(200);
}

const alertNames = (n: { body: Record<string, unknown> }) =>
  ((n.body.alerts as { labels: Record<string, string> }[] | undefined) ?? []).map((a) => a.labels.alertname);

/**
 * The environment's Alertmanager with test-only receivers (webhooks and a Slack receiver, all on a
 * loopback sink) and groupWait 1s; its args, routes and inhibit rules are the environment's. Started
 * before the describe block's tests, stopped after them.
 */
function onTheSink(name: string) {
  const env = loadEnvironment(name, {
    monitoring: {
      alerting: {
        groupWait: '1s',
        receivers: [
          { name: 'pager', type: 'webhook', secretName: 'alertmanager-pager' },
          { name: 'chat', type: 'slack', secretName: 'alertmanager-slack', channel: '#alerts' },
          { name: 'deadmans-switch', type: 'webhook', secretName: 'alertmanager-deadmans-switch' },
        ],
      },
    },
  });
  const objects = synthObjects(env);
  const sink = new AlertSink();
  let am: RunningAlertmanagers | undefined;
  beforeAll(async () => {
    const sinkUrl = await sink.listen();
    am = await startAlertmanagers(objects, { secrets: sinkSecrets(alertmanagerOf(objects).config, sinkUrl) });
  });
  afterAll(async () => {
    await am?.stop();
    await sink.close();
  });
  return { env, objects, sink, am: () => am! };
}

describe('prod: two replicas clustered over the mesh port, notifying once', () => {
  // GIVEN prod's objects with test-only receivers (webhooks and a Slack receiver, all on the loopback sink)
  // and groupWait 1s; the args, routes and inhibit rules are prod's.
  const { objects, sink, am: running } = onTheSink('prod');
  let am: RunningAlertmanagers;
  beforeAll(() => {
    am = running();
  });

  test('both replicas are ready, healthy and see each other (alertmanager_cluster_members 2)', async () => {
    expect(am.urls).toHaveLength(2);
    for (const url of am.urls) {
      for (const path of ['/-/ready', '/-/healthy'])
        expect([path, (await fetch(url + path)).status]).toEqual([path, 200]);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/^alertmanager_cluster_members 2$/m);
    }
  });

  test('the probes of the container are the paths that answered', () => {
    const container = alertmanagerOf(objects).statefulSet.spec.template.spec.containers[0] as unknown as Record<
      string,
      { httpGet: { path: string } }
    >;
    expect([container.readinessProbe.httpGet.path, container.livenessProbe.httpGet.path]).toEqual([
      '/-/ready',
      '/-/healthy',
    ]);
  });

  test('an alert sent to both replicas reaches its receiver once, Slack text with summary, description and runbook', async () => {
    // WHEN Prometheus' behaviour: the same alert to every replica
    const a = alert('ApiPodDown', { pod: 'api-7' });
    await Promise.all(am.urls.map((u) => post(u, [a])));
    const first = await sink.next((n) => n.path === '/chat' && JSON.stringify(n.body).includes('ApiPodDown'), 10000);
    // THEN the second replica waits its peer timeout (15 s, position 1) and finds the notification in the
    // gossiped log: no second notification.
    await new Promise((r) => setTimeout(r, 17000));
    const all = sink.received.filter((n) => n.path === '/chat' && JSON.stringify(n.body).includes('ApiPodDown'));
    expect(all).toHaveLength(1);
    const text = JSON.stringify(first.body);
    expect(text).toContain('ApiPodDown summary');
    expect(text).toContain('ApiPodDown description');
    expect(text).toContain('Runbook: https://runbooks/#apipoddown');
    expect(first.body.channel).toBe('#alerts');
  });

  test('inhibition: RedisNodeDown holds back the exporter, target and replica alerts it explains, not the others', async () => {
    // GIVEN a Redis replica down: its node-down alert and the symptoms it causes, plus an unrelated target down,
    // sent to both replicas as Prometheus does. (Sent to one, it waits 15 s whenever that replica is second in
    // the cluster's order, which is the order the two processes made their random peer names in: a flake.)
    const alerts = [
      alert('RedisNodeDown', { pod: 'redis-4', app: 'redis' }, 'page'),
      alert('ServerUnreachableFromExporter', { pod: 'redis-4', app: 'redis' }, 'page'),
      alert('TargetDown', { pod: 'redis-4', app: 'redis' }),
      alert('RedisMasterWithoutReplica', { pod: 'redis-1', app: 'redis' }, 'page'),
      alert('TargetDown', { pod: 'edge-2', app: 'edge' }),
    ];
    await Promise.all(am.urls.map((u) => post(u, alerts)));
    await sink.next((n) => n.path === '/pager' && alertNames(n).includes('RedisNodeDown'), 10000);
    await sink.next((n) => n.path === '/chat' && JSON.stringify(n.body).includes('edge-2'), 10000);
    // Another group interval's worth of waiting: nothing held back may arrive.
    await new Promise((r) => setTimeout(r, 3000));
    const delivered = sink.received.flatMap((n) =>
      n.path === '/pager' ? alertNames(n) : n.path === '/chat' ? [JSON.stringify(n.body)] : [],
    );
    expect(delivered.filter((d) => d.includes('ServerUnreachableFromExporter'))).toEqual([]);
    expect(delivered.filter((d) => d.includes('RedisMasterWithoutReplica'))).toEqual([]);
    expect(delivered.filter((d) => d.includes('TargetDown') && d.includes('redis-4'))).toEqual([]);
    // THEN Alertmanager's own view names the inhibiting alert.
    const status = (await (await fetch(`${am.urls[0]}/api/v2/alerts`)).json()) as {
      labels: Record<string, string>;
      status: { state: string; inhibitedBy: string[] };
    }[];
    const state = (name: string, pod: string) =>
      status.find((s) => s.labels.alertname === name && s.labels.pod === pod)?.status.state;
    expect(state('ServerUnreachableFromExporter', 'redis-4')).toBe('suppressed');
    expect(state('TargetDown', 'redis-4')).toBe('suppressed');
    expect(state('RedisMasterWithoutReplica', 'redis-1')).toBe('suppressed');
    expect(state('TargetDown', 'edge-2')).toBe('active');
    expect(state('RedisNodeDown', 'redis-4')).toBe('active');
  });
});

describe('inhibition of the PostgreSQL and whole-tier alerts, with the labels their rules give them', () => {
  // GIVEN dev's routes and inhibit rules (the same rules as prod's; one replica, so no gossip to settle
  // before the first notification), groupWait 1s (test-only), every receiver on the loopback sink
  const { env, sink, am: running } = onTheSink('dev');
  let am: RunningAlertmanagers;
  beforeAll(() => {
    am = running();
  });

  /** Labels as the rule's expression leaves them: aggregations (`max by (scope)`, ...) drop the namespace. */
  const aggregated = (name: string, labels: Record<string, string>, severity = 'page') => {
    const a = alert(name, labels, severity);
    return { ...a, labels: Object.fromEntries(Object.entries(a.labels).filter(([k]) => k !== 'namespace')) };
  };
  const target = { job: 'kubernetes-pods', instance: '10.0.2.3:9187', app: 'postgres', pod: 'postgres-2' };

  test('the rules behind these inhibit rules are the same in dev and prod', () => {
    expect(shippedInhibitions(env)).toEqual(shippedInhibitions(loadEnvironment('prod')));
  });

  test('no leader holds back the poolers’ login and wait alerts; a stopped member its exporter, members and replica alerts; ApiDown the per-pod ones', async () => {
    // WHEN the alerts of a Patroni cluster without a leader, a member whose PostgreSQL is stopped, and
    // every API pod down arrive, with unrelated alerts beside them
    await post(am.urls[0], [
      aggregated('PatroniNoLeader', { scope: 'postgres' }),
      aggregated('PgBouncerServerLoginFailing', { pod: 'pgbouncer-0' }),
      aggregated('PgBouncerClientsWaiting', { pod: 'pgbouncer-1', database: 'fastnext' }),
      alert('PgBouncerDown', { pod: 'pgbouncer-readonly-0', app: 'pgbouncer-readonly' }, 'page'),
      alert('PatroniMemberNotRunning', { ...target, job: 'kubernetes-service-endpoints', scope: 'postgres' }, 'page'),
      alert('ServerUnreachableFromExporter', target, 'page'),
      alert('ServerUnreachableFromExporter', { ...target, pod: 'redis-1', app: 'redis' }, 'page'),
      aggregated('PatroniMembersMissing', { scope: 'postgres' }),
      aggregated('PostgresReplicaMissing', { instance: '10.0.2.1:9187' }),
      alert('ApiDown', { app: 'api' }, 'page'),
      alert('ApiPodDown', { app: 'api', pod: 'api-3', job: 'kubernetes-pods', instance: '10.0.1.3:9464' }),
      alert('TargetDown', { app: 'api', pod: 'api-3', job: 'kubernetes-pods', instance: '10.0.1.3:9464' }),
      alert('TargetDown', { app: 'edge', pod: 'edge-1', job: 'kubernetes-pods', instance: '10.0.4.1:9113' }),
    ]);
    await sink.next((n) => n.path === '/pager' && alertNames(n).includes('PatroniNoLeader'), 20000);
    await sink.next((n) => n.path === '/chat' && JSON.stringify(n.body).includes('edge-1'), 20000);
    await new Promise((r) => setTimeout(r, 3000));

    // THEN Alertmanager holds back exactly the symptoms, and delivers none of them
    const status = (await (await fetch(`${am.urls[0]}/api/v2/alerts`)).json()) as {
      labels: Record<string, string>;
      status: { state: string };
    }[];
    const states = Object.fromEntries(
      status.map((s) => [`${s.labels.alertname}${s.labels.pod ? `/${s.labels.pod}` : ''}`, s.status.state]),
    );
    expect(states).toEqual({
      PatroniNoLeader: 'active',
      'PgBouncerServerLoginFailing/pgbouncer-0': 'suppressed',
      'PgBouncerClientsWaiting/pgbouncer-1': 'suppressed',
      'PgBouncerDown/pgbouncer-readonly-0': 'active',
      'PatroniMemberNotRunning/postgres-2': 'active',
      'ServerUnreachableFromExporter/postgres-2': 'suppressed',
      'ServerUnreachableFromExporter/redis-1': 'active',
      PatroniMembersMissing: 'suppressed',
      PostgresReplicaMissing: 'suppressed',
      ApiDown: 'active',
      'ApiPodDown/api-3': 'suppressed',
      'TargetDown/api-3': 'suppressed',
      'TargetDown/edge-1': 'active',
    });
    const held = ['PgBouncerServerLoginFailing', 'PgBouncerClientsWaiting', 'PatroniMembersMissing'];
    held.push('PostgresReplicaMissing', 'ApiPodDown');
    expect(held.filter((a) => sink.received.some((n) => JSON.stringify(n.body).includes(a)))).toEqual([]);
  });
});

describe('a receiver whose Secret has not been created', () => {
  // GIVEN dev's objects, groupWait 1s (test-only), and no receiver Secret at all
  const objects = synthObjects(loadEnvironment('dev', { monitoring: { alerting: { groupWait: '1s' } } }));
  let am: RunningAlertmanagers;
  beforeAll(async () => {
    am = await startAlertmanagers(objects);
  });
  afterAll(() => am?.stop());

  test('fails its notifications (alertmanager_notifications_failed_total) while Alertmanager keeps serving', async () => {
    await post(am.urls[0], [alert('ApiPodDown', { pod: 'api-1' })]);
    const failed = async () => {
      const text = await (await fetch(`${am.urls[0]}/metrics`)).text();
      return [...text.matchAll(/^alertmanager_notifications_failed_total\{[^}]*\} (\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    };
    for (let i = 0; i < 100 && (await failed()) === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await failed()).toBeGreaterThan(0);
    expect((await fetch(`${am.urls[0]}/-/ready`)).status).toBe(200);
    expect(am.log(0)).toMatch(/no such file or directory/);
  });
});
