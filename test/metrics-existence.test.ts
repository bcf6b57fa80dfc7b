/**
 * Metric existence on real servers: PostgreSQL (primary + 2 streaming replicas) and a
 * 6-node Redis Cluster running the shipped files (the data tier's launcher) and nginx
 * stub_status, behind the postgres, redis and nginx exporters of Debian 12 and of
 * Debian 13 (their versions bracket the pinned images'), plus the bundled API service
 * (service/src/server.ts) against the same servers. All are scraped directly and by
 * Prometheus 2.53.3 (Debian 13's build, the shipped image's version) and Debian 12's
 * 2.42, both running the shipped rule files. Every metric a rule or dashboard uses must
 * be in a scrape or recorded by a rule, and Prometheus must accept every dashboard
 * expression and evaluate every rule without error, in both modes (operator mode's
 * expressions are scoped to a namespace). Alertmanager (prod's two replicas, Debian 13's
 * 0.28.1, the pinned image's version) receives Prometheus' alerts and is scraped too, as is
 * Prometheus itself.
 *
 * Not provable here: kube-state-metrics (not packaged by Debian, and it needs a
 * kube-apiserver) and the kubelet (needs a node and an API server). Their few series are
 * checked against their upstream sources instead (health-alerts.ts names them and where
 * they are defined); the last test lists exactly which metrics rest on that.
 */
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { parse, stringify } from 'yaml';
import { alertRules, shippedRuleGroups } from '../constructs/monitoring/alert-rules';
import { KUBE_STATE_METRICS, KUBELET_VOLUME_STATS } from '../constructs/monitoring/health-alerts';
import { PROMETHEUS_FILES } from '../constructs/monitoring/prometheus-config';
import { scopedDashboard } from '../constructs/monitoring/operator';
import { withLabelMatcher } from '../constructs/monitoring/promql';
import { dashboards, dashboardExpressions } from '../constructs/monitoring/dashboards';
import { type RunningAlertmanagers, startAlertmanagers } from '../tools/runtime/alertmanager';
import { SERVICE_METRICS } from '../service/src/contract';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import {
  type PatroniLaunch,
  type PgBouncerLaunch,
  type RedisClusterLaunch,
  startPatroni,
  startPgBouncer,
  startRedisCluster,
} from '../tools/runtime/launcher';
import {
  namesInExposition,
  podTargetGroup,
  type ScrapeAnnotations,
  startExporter,
  startNginx,
  DEBIAN_PROMETHEUS,
  SHIPPED_VERSION_PROMETHEUS,
  startPrometheus,
  startService,
  stopAll,
  tempDir,
  waitFor,
} from '../tools/runtime/metrics-check/servers';
import { metricUses, missingMetrics, shippedExpressions } from '../tools/runtime/metrics-check/used-metrics';
import { PGBACKREST_FILES } from '../constructs/postgres/pgbackrest-files';
import { filesFrom } from '../tools/runtime/launcher/sources';

jest.setTimeout(120000);

const prod = loadEnvironment('prod');
/** Exporter targets as kubernetes_sd would label them (app, pod), on their loopback host. */
let targets: { app: string; pod: string; host: string; port: number }[] = [];
/** Prometheus 2.53.3 (the shipped image's version) and Debian 12's 2.42, on the same config and targets. */
let prometheus = '';
let prometheus242 = '';
/** Names scraped from Debian 12's exporters (which Prometheus also scrapes) and from Debian 13's. */
const scraped = new Set<string>();
const scraped13 = new Set<string>();
const serviceScraped = new Set<string>();
/** Patroni's REST /metrics and pgbouncer_exporter 0.10.2: the shipped versions themselves (no second build to bracket). */
const tierScraped = new Set<string>();
/** Names in Prometheus' own /metrics (both versions) and in Alertmanager's. */
const selfScraped = new Set<string>();
let alertmanager: RunningAlertmanagers | undefined;
/** Series no binary here can produce: their names come from upstream sources (see the header). */
const DOCUMENTED_ONLY = [...Object.values(KUBE_STATE_METRICS), ...Object.values(KUBELET_VOLUME_STATS)];

async function query(
  expr: string,
  base = prometheus,
): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> {
  const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await r.json()) as { status: string; error?: string; data?: { result: unknown[] } };
}

let pg: PatroniLaunch | undefined;
let pool: PgBouncerLaunch | undefined;
let redis: RedisClusterLaunch | undefined;

beforeAll(async () => {
  try {
    // The servers run the dev files (smallest memory); metric names do not depend on the environment.
    const objects = synthObjects(loadEnvironment('dev'));
    // PostgreSQL runs prod's files: dev has no backups, and the backup metrics come from pgBackRest's
    // info through the shipped exporter queries (its repository a local directory, as on the twin).
    const prodObjects = synthObjects(prod);
    const queriesFile = join(tempDir('metrics-exporter-queries-'), PGBACKREST_FILES.exporterQueries);
    writeFileSync(
      queriesFile,
      filesFrom(prodObjects, 'postgres-files', [PGBACKREST_FILES.exporterQueries])[PGBACKREST_FILES.exporterQueries],
    );
    const [patroni, cache, nginx] = await Promise.all([
      startPatroni(prodObjects, { members: 3 }),
      startRedisCluster(objects),
      startNginx(),
    ]);
    [pg, redis] = [patroni, cache];
    // prod's PgBouncer files too: prod's PostgreSQL admits TLS only, and its pgbouncer.ini speaks it.
    pool = await startPgBouncer(prodObjects, {
      server: patroni.primary,
      password: patroni.password,
      pods: 1,
      exporter: true,
    });
    // One pooled transaction, so the pool and stats series exist.
    const pc = await patroni.connect(pool.service);
    await pc.query('SELECT 1');
    await pc.end();
    // As the sidecar logs in: the exporter's own role (pg_monitor, no superuser).
    const pgTarget = (ep: { host: string; port: number }) => ({
      kind: 'postgres' as const,
      ...ep,
      ...patroni.exporter,
      queriesFile,
      caFile: patroni.tls?.caFile,
    });
    const local = '127.0.0.1';
    targets = [
      ...(await Promise.all(
        patroni.members.map(async (m) => ({
          app: 'postgres',
          pod: m.name,
          host: local,
          port: await startExporter(pgTarget(m)),
        })),
      )),
      // Patroni's own /metrics on the REST port (scraped in a cluster through the annotated postgres-patroni Service).
      ...patroni.members.map((m) => ({ app: 'postgres', pod: m.name, host: m.rest.host, port: m.rest.port })),
      ...pool.pods.map((p) => ({ app: 'pgbouncer', pod: p.name, host: p.metrics!.host, port: p.metrics!.port })),
      ...(await Promise.all(
        cache.nodes.map(async (n, i) => ({
          app: 'redis',
          pod: `redis-${i}`,
          host: local,
          port: await startExporter({ kind: 'redis', host: n.host, port: n.port, ...cache.auth('exporter') }),
        })),
      )),
      { app: 'edge', pod: 'edge-0', host: local, port: await startExporter({ kind: 'nginx', port: nginx }) },
    ];
    // The service's request histogram has series once a request was served (startService makes one).
    const serviceMetrics = await startService({
      postgres: {
        primary: patroni.primary,
        replicas: patroni.replicas,
        database: patroni.database,
        user: patroni.user,
        password: patroni.password,
      },
      redis: { nodes: cache.nodes, ...cache.auth('app') },
    });
    namesInExposition(await (await fetch(serviceMetrics)).text()).forEach((n) => serviceScraped.add(n));
    for (const t of targets) {
      const text = await (await fetch(`http://${t.host}:${t.port}/metrics`)).text();
      namesInExposition(text).forEach((n) => scraped.add(n));
      if (t.host !== local || t.app === 'pgbouncer') namesInExposition(text).forEach((n) => tierScraped.add(n));
    }
    // The same servers through Debian 13's exporters (postgres 0.17.1, redis 1.69.0, nginx 1.4.1).
    const ports13 = await Promise.all([
      ...patroni.members.map((ep) => startExporter(pgTarget(ep), 'debian13')),
      ...cache.nodes.map((n) =>
        startExporter({ kind: 'redis', host: n.host, port: n.port, ...cache.auth('exporter') }, 'debian13'),
      ),
      startExporter({ kind: 'nginx', port: nginx }, 'debian13'),
    ]);
    for (const port of ports13) {
      namesInExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).forEach((n) =>
        scraped13.add(n),
      );
    }
    targets.push({ app: 'api', pod: 'api-0', host: local, port: Number(new URL(serviceMetrics).port) });
    // Prod's Alertmanager (two replicas), which the shipped alerting block points Prometheus at.
    alertmanager = await startAlertmanagers(prodObjects);
    alertmanager.ports.forEach((p, i) =>
      targets.push({ app: 'alertmanager', pod: `alertmanager-${i}`, host: '127.0.0.1', port: p.web }),
    );
    // GIVEN the shipped prometheus.yml (prod's ConfigMap), its kubernetes-pods job kept whole (relabeling
    // included) with only kubernetes_sd swapped for static target groups carrying the labels pod discovery
    // produces, and its Alertmanager addresses swapped for the loopback ones.
    const dir = tempDir('metrics-prom-config-');
    const files = (prodObjects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'prometheus-config')!.data ??
      {}) as Record<string, string>;
    const shipped = parse(files[PROMETHEUS_FILES.config]) as {
      scrape_configs: { job_name: string }[];
      alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    };
    shipped.alerting.alertmanagers[0].static_configs[0].targets = alertmanager.ports.map((p) => `127.0.0.1:${p.web}`);
    const podsJobWithoutSd = {
      ...(shipped.scrape_configs.find((j) => j.job_name === 'kubernetes-pods') as Record<string, unknown>),
    };
    delete podsJobWithoutSd.kubernetes_sd_configs;
    const config = {
      ...shipped,
      scrape_configs: [
        shipped.scrape_configs.find((j) => j.job_name === 'prometheus'),
        {
          ...podsJobWithoutSd,
          static_configs: [
            ...targets.map((t) =>
              discovered(t.pod, t.app, { scrape: 'true', port: String(t.port), path: '/metrics' }, 'Running', t.host),
            ),
            // Decoys the relabeling must drop: a pod without annotations and a completed Job pod.
            discovered('api-maintenance-1', 'api-maintenance', {}),
            discovered('redis-create-x', 'redis', { scrape: 'true', port: '1', path: '/metrics' }, 'Succeeded'),
          ],
        },
      ],
    };
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, PROMETHEUS_FILES.config), stringify(config));
    writeFileSync(join(dir, PROMETHEUS_FILES.alertRules), files[PROMETHEUS_FILES.alertRules]);
    writeFileSync(join(dir, PROMETHEUS_FILES.recordingRules), files[PROMETHEUS_FILES.recordingRules]);
    [prometheus, prometheus242] = await Promise.all([
      startPrometheus(join(dir, PROMETHEUS_FILES.config), SHIPPED_VERSION_PROMETHEUS),
      startPrometheus(join(dir, PROMETHEUS_FILES.config), DEBIAN_PROMETHEUS),
    ]);
    await waitFor(
      'every target scraped once',
      async () =>
        ((await query('count(up{job="kubernetes-pods"} == 1)')).data?.result as { value: [number, string] }[])[0]
          ?.value[1] === String(targets.length),
      40000,
    );
    for (const base of [prometheus, prometheus242, ...alertmanager.urls]) {
      namesInExposition(await (await fetch(`${base}/metrics`)).text()).forEach((n) => selfScraped.add(n));
    }
  } catch (e) {
    await stopEverything();
    throw e;
  }
});

/**
 * A target group as kubernetes_sd (role pod) produces it for a pod declaring two container
 * ports (one target each, as discovery does): relabeling must fold them into one scrape.
 */
const discovered = (pod: string, app: string, annotations: ScrapeAnnotations, phase = 'Running', host = '127.0.0.1') =>
  podTargetGroup({
    namespace: prod.namespace,
    pod,
    app,
    annotations,
    phase,
    targets: [`${host}:8080`, `${host}:8443`],
  });

async function stopEverything(): Promise<void> {
  stopAll();
  await pool?.stop();
  await Promise.all([pg?.stop(), redis?.stop(), alertmanager?.stop()]);
}

afterAll(() => stopEverything());

test('the shipped relabeling keeps annotated pods on their annotated port, labels them, and drops the rest', async () => {
  const r = (await (await fetch(`${prometheus}/api/v1/targets`)).json()) as {
    data: {
      activeTargets: { labels: Record<string, string>; scrapeUrl: string }[];
      droppedTargets: { discoveredLabels: Record<string, string> }[];
    };
  };
  const pods = r.data.activeTargets.filter((t) => t.labels.job === 'kubernetes-pods');
  expect(pods.map((t) => [t.scrapeUrl, t.labels]).sort()).toEqual(
    targets
      .map((t) => [
        `http://${t.host}:${t.port}/metrics`,
        { app: t.app, pod: t.pod, namespace: prod.namespace, job: 'kubernetes-pods', instance: `${t.host}:${t.port}` },
      ])
      .sort(),
  );
  // Each decoy is dropped once per container port; each kept pod is scraped once (checked above).
  expect(r.data.droppedTargets.map((t) => t.discoveredLabels.__meta_kubernetes_pod_name).sort()).toEqual([
    'api-maintenance-1',
    'api-maintenance-1',
    'redis-create-x',
    'redis-create-x',
  ]);
});

test('the exporters expose what the servers report (cluster ok, replica streaming, nginx up)', async () => {
  const value = async (expr: string) =>
    ((await query(expr)).data?.result as { value: [number, string] }[])[0]?.value[1];
  expect(await value('max(redis_cluster_state)')).toBe('1');
  expect(await value('count(redis_instance_info{role="master"})')).toBe('3');
  expect(await value('min(redis_connected_slaves and on (instance) redis_instance_info{role="master"})')).toBe('1');
  expect(await value('count(pg_stat_replication_pg_wal_lsn_diff{state="streaming"})')).toBe('2');
  expect(await value('max(nginx_up)')).toBe('1');
});

test('the replica count of PostgresReplicaMissing sees the primary with its two streaming replicas, and only the primary', async () => {
  const rule = alertRules(prod).find((r) => r.alert === 'PostgresReplicaMissing');
  const count = rule!.expr.replace(/ < \d+$/, '');
  const r = (await query(count)).data?.result as { metric: Record<string, string>; value: [number, string] }[];
  const leader = pg!.members[await pg!.leaderIndex()].name;
  const primary = targets.find((t) => t.pod === leader && t.host === '127.0.0.1')!;
  expect(r.map((x) => [x.metric.instance, x.value[1]])).toEqual([[`127.0.0.1:${primary.port}`, '2']]);
});

test("Patroni's /metrics and pgbouncer_exporter report the real state: one leader, two replicas, PgBouncer up", async () => {
  const value = async (expr: string) =>
    ((await query(expr)).data?.result as { value: [number, string] }[])[0]?.value[1];
  expect(await value('sum(patroni_master)')).toBe('1');
  expect(await value('sum(patroni_replica)')).toBe('2');
  expect(await value('min(patroni_postgres_running)')).toBe('1');
  expect(await value('max(patroni_cluster_unlocked)')).toBe('0');
  expect(await value('min(pgbouncer_up)')).toBe('1');
  // The Patroni rules evaluate on these series with no alert firing.
  for (const name of ['PatroniNoLeader', 'PatroniMemberNotRunning', 'PgBouncerClientsWaiting']) {
    const rule = alertRules(prod).find((x) => x.alert === name)!;
    expect((await query(rule.expr)).data?.result).toEqual([]);
  }
});

test('RedisMasterWithoutReplica joins on the real labels: the three masters match, the replicas do not', async () => {
  const r = (await query('redis_connected_slaves and on (instance) redis_instance_info{role="master"}')).data
    ?.result as { metric: Record<string, string>; value: [number, string] }[];
  expect(r.map((x) => x.value[1])).toEqual(['1', '1', '1']);
  expect(
    (await query(alertRules(prod).find((a) => a.alert === 'RedisMasterWithoutReplica')!.expr)).data?.result,
  ).toEqual([]);
});

test('the service exposes every metric of its contract (SERVICE_METRICS), histogram series included', () => {
  const http = SERVICE_METRICS.httpRequestDuration;
  const expected: string[] = [
    ...Object.values(SERVICE_METRICS).filter((n) => n !== http),
    ...[`${http}_bucket`, `${http}_count`, `${http}_sum`, 'process_start_time_seconds'],
  ];
  expect(expected.filter((n) => !serviceScraped.has(n))).toEqual([]);
});

test('every metric a rule or dashboard uses is scraped from a real exporter, the service, Prometheus or Alertmanager, or recorded', () => {
  // `up` is written by Prometheus for every target (checked in the query above).
  const available = new Set([...scraped, ...serviceScraped, ...selfScraped, ...DOCUMENTED_ONLY, 'up']);
  for (const name of environmentNames()) {
    expect(missingMetrics(metricUses(loadEnvironment(name)), available)).toEqual([]);
  }
});

test('the only metrics not proven on a real binary are the kube-state-metrics and kubelet ones named from their sources', () => {
  const proven = new Set([...scraped, ...serviceScraped, ...selfScraped, 'up']);
  const unproven = new Set(
    environmentNames().flatMap((name) =>
      missingMetrics(metricUses(loadEnvironment(name)), proven).map((u) => u.metric),
    ),
  );
  expect([...unproven].sort()).toEqual([...DOCUMENTED_ONLY].sort());
  // And none of those is claimed by a binary we run (a typo would be caught if one did).
  expect(DOCUMENTED_ONLY.filter((m) => proven.has(m))).toEqual([]);
});

test('the alerting metrics exist: Prometheus sends to both Alertmanager replicas, which gossip as a cluster of 2', async () => {
  const value = async (expr: string) =>
    ((await query(expr)).data?.result as { value: [number, string] }[])[0]?.value[1];
  const own = await (await fetch(`${prometheus}/metrics`)).text();
  expect(own).toMatch(/^prometheus_notifications_alertmanagers_discovered 2$/m);
  for (const m of [
    'prometheus_notifications_sent_total',
    'prometheus_notifications_errors_total',
    'alertmanager_notifications_failed_total',
    'alertmanager_config_last_reload_successful',
    'prometheus_tsdb_compactions_failed_total',
    'prometheus_rule_evaluation_failures_total',
    'prometheus_config_last_reload_successful',
  ]) {
    expect([m, selfScraped.has(m)]).toEqual([m, true]);
  }
  await waitFor('Alertmanager scraped', async () => (await value('min(alertmanager_cluster_members)')) === '2', 30000);
});

test("every metric a rule or dashboard uses also exists in Debian 13's exporters (newer than the pinned images)", () => {
  const available = new Set([
    ...scraped13,
    ...tierScraped,
    ...serviceScraped,
    ...selfScraped,
    ...DOCUMENTED_ONLY,
    'up',
  ]);
  for (const name of environmentNames()) {
    expect(missingMetrics(metricUses(loadEnvironment(name)), available)).toEqual([]);
  }
});

test('fails when a rule uses a metric the Debian postgres_exporter does not expose (pg_replication_lag)', () => {
  const missing = missingMetrics(
    [{ metric: 'pg_replication_lag', where: 'alert Example' }],
    new Set([...scraped, 'up']),
  );
  expect(missing).toEqual([{ metric: 'pg_replication_lag', where: 'alert Example' }]);
});

describe.each(['2.53.3', '2.42'])('Prometheus %s', (version) => {
  const url = () => (version === '2.42' ? prometheus242 : prometheus);

  test.each(environmentNames())(
    'accepts every dashboard and rule expression of %s, bundled and scoped for operator mode',
    async (name) => {
      const config = loadEnvironment(name);
      const errors: string[] = [];
      const scoped = [
        ...shippedExpressions(config).map(({ where, expr }) => ({
          where: `operator ${where}`,
          expr: withLabelMatcher(expr, 'namespace', config.namespace),
        })),
        ...Object.values(dashboards(config)).flatMap((d) =>
          dashboardExpressions(scopedDashboard(d, config.namespace)).map((e) => ({
            where: `operator ${d.uid}`,
            expr: e.expr,
          })),
        ),
      ];
      for (const { where, expr } of [...shippedExpressions(config), ...scoped]) {
        const r = await query(expr, url());
        if (r.status !== 'success') errors.push(`${where}: ${r.error ?? r.status}`);
      }
      expect(errors).toEqual([]);
    },
  );

  test('loads the shipped rule files and evaluates every rule without error', async () => {
    const rules = async () =>
      (
        (await (await fetch(`${url()}/api/v1/rules`)).json()) as {
          data: { groups: { name: string; rules: { name: string; health: string; lastEvaluation: string }[] }[] };
        }
      ).data.groups;
    await waitFor('one rule evaluation', async () =>
      (await rules()).every((g) => g.rules.every((x) => !x.lastEvaluation.startsWith('0001'))),
    );
    const groups = await rules();
    expect(groups.map((g) => g.name).sort()).toEqual(
      ['fastnext-recording', ...shippedRuleGroups(prod).map((g) => g.name)].sort(),
    );
    expect(groups.flatMap((g) => g.rules.filter((x) => x.health !== 'ok'))).toEqual([]);
  });
});
