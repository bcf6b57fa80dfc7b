/**
 * Metric existence on real servers: PostgreSQL (primary + 2 streaming replicas) and a
 * 6-node Redis Cluster running the shipped files (the data tier's launcher) and nginx
 * stub_status, behind the postgres, redis and nginx exporters of Debian 12 and of
 * Debian 13 (their versions bracket the pinned images'), plus the bundled API service
 * (service/src/server.ts) against the same servers. All are scraped directly and by
 * Prometheus 2.53.3 (Debian 13's build, the shipped image's version) and Debian 12's
 * 2.42, both running the shipped rule files. Every metric a rule or dashboard uses must
 * be in a scrape or recorded by a rule, and Prometheus must accept every dashboard
 * expression and evaluate every rule without error.
 */
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { parse, stringify } from 'yaml';
import { alertRules, renderAlertRules, renderRecordingRules } from '../constructs/monitoring/alert-rules';
import { PROMETHEUS_FILES, renderPrometheusConfig } from '../constructs/monitoring/prometheus-config';
import { SERVICE_METRICS } from '../service/src/contract';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import {
  type PostgresLaunch,
  type RedisClusterLaunch,
  startPostgres,
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

jest.setTimeout(120000);

const prod = loadEnvironment('prod');
/** Exporter targets as kubernetes_sd would label them (app, pod). */
let targets: { app: string; pod: string; port: number }[] = [];
/** Prometheus 2.53.3 (the shipped image's version) and Debian 12's 2.42, on the same config and targets. */
let prometheus = '';
let prometheus242 = '';
/** Names scraped from Debian 12's exporters (which Prometheus also scrapes) and from Debian 13's. */
const scraped = new Set<string>();
const scraped13 = new Set<string>();
const serviceScraped = new Set<string>();

async function query(
  expr: string,
  base = prometheus,
): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> {
  const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await r.json()) as { status: string; error?: string; data?: { result: unknown[] } };
}

let pg: PostgresLaunch | undefined;
let redis: RedisClusterLaunch | undefined;

beforeAll(async () => {
  try {
    // The servers run the dev files (smallest memory); metric names do not depend on the environment.
    const objects = synthObjects(loadEnvironment('dev'));
    let nginx: number;
    [pg, redis, nginx] = await Promise.all([
      startPostgres(objects, { replicas: 2 }),
      startRedisCluster(objects),
      startNginx(),
    ]);
    const su = pg.superuser;
    const pgTarget = (ep: { host: string; port: number }) => ({ kind: 'postgres' as const, ...ep, ...su });
    targets = [
      { app: 'postgres', pod: 'postgres-primary-0', port: await startExporter(pgTarget(pg.primary)) },
      ...(await Promise.all(
        pg.replicas.map(async (r) => ({ app: 'postgres', pod: r.podName, port: await startExporter(pgTarget(r)) })),
      )),
      ...(await Promise.all(
        redis.nodes.map(async (n, i) => ({
          app: 'redis',
          pod: `redis-${i}`,
          port: await startExporter({ kind: 'redis', host: n.host, port: n.port, password: redis!.password }),
        })),
      )),
      { app: 'edge', pod: 'edge-0', port: await startExporter({ kind: 'nginx', port: nginx }) },
    ];
    // The service's request histogram has series once a request was served (startService makes one).
    const serviceMetrics = await startService({
      postgres: {
        primary: pg.primary,
        replicas: pg.replicas,
        database: pg.database,
        user: pg.user,
        password: pg.password,
      },
      redis: { nodes: redis.nodes, password: redis.password },
    });
    namesInExposition(await (await fetch(serviceMetrics)).text()).forEach((n) => serviceScraped.add(n));
    for (const t of targets) {
      const text = await (await fetch(`http://127.0.0.1:${t.port}/metrics`)).text();
      namesInExposition(text).forEach((n) => scraped.add(n));
    }
    // The same servers through Debian 13's exporters (postgres 0.17.1, redis 1.69.0, nginx 1.4.1).
    const ports13 = await Promise.all([
      ...[pg.primary, ...pg.replicas].map((ep) => startExporter(pgTarget(ep), 'debian13')),
      ...redis.nodes.map((n) =>
        startExporter({ kind: 'redis', host: n.host, port: n.port, password: redis!.password }, 'debian13'),
      ),
      startExporter({ kind: 'nginx', port: nginx }, 'debian13'),
    ]);
    for (const port of ports13) {
      namesInExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).forEach((n) =>
        scraped13.add(n),
      );
    }
    targets.push({ app: 'api', pod: 'api-0', port: Number(new URL(serviceMetrics).port) });
    // GIVEN the shipped prometheus.yml, its kubernetes-pods job kept whole (relabeling included) with
    // only kubernetes_sd swapped for static target groups carrying the labels pod discovery produces.
    const dir = tempDir('metrics-prom-config-');
    const shipped = parse(renderPrometheusConfig(prod)) as { scrape_configs: { job_name: string }[] };
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
            ...targets.map((t) => discovered(t.pod, t.app, { scrape: 'true', port: String(t.port), path: '/metrics' })),
            // Decoys the relabeling must drop: a pod without annotations and a completed Job pod.
            discovered('api-maintenance-1', 'api-maintenance', {}),
            discovered('redis-create-x', 'redis', { scrape: 'true', port: '1', path: '/metrics' }, 'Succeeded'),
          ],
        },
      ],
    };
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, PROMETHEUS_FILES.config), stringify(config));
    writeFileSync(join(dir, PROMETHEUS_FILES.alertRules), renderAlertRules(prod));
    writeFileSync(join(dir, PROMETHEUS_FILES.recordingRules), renderRecordingRules());
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
  } catch (e) {
    await stopEverything();
    throw e;
  }
});

/**
 * A target group as kubernetes_sd (role pod) produces it for a pod declaring two container
 * ports (one target each, as discovery does): relabeling must fold them into one scrape.
 */
const discovered = (pod: string, app: string, annotations: ScrapeAnnotations, phase = 'Running') =>
  podTargetGroup({
    namespace: prod.namespace,
    pod,
    app,
    annotations,
    phase,
    targets: ['127.0.0.1:8080', '127.0.0.1:8443'],
  });

async function stopEverything(): Promise<void> {
  stopAll();
  await Promise.all([pg?.stop(), redis?.stop()]);
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
        `http://127.0.0.1:${t.port}/metrics`,
        { app: t.app, pod: t.pod, namespace: prod.namespace, job: 'kubernetes-pods', instance: `127.0.0.1:${t.port}` },
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
  const primary = targets.find((t) => t.pod === 'postgres-primary-0')!;
  expect(r.map((x) => [x.metric.instance, x.value[1]])).toEqual([[`127.0.0.1:${primary.port}`, '2']]);
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

test('every metric a rule or dashboard uses is scraped from a real exporter or the service, or recorded', () => {
  // `up` is written by Prometheus for every target (checked in the query above).
  const available = new Set([...scraped, ...serviceScraped, 'up']);
  for (const name of environmentNames()) {
    expect(missingMetrics(metricUses(loadEnvironment(name)), available)).toEqual([]);
  }
});

test("every metric a rule or dashboard uses also exists in Debian 13's exporters (newer than the pinned images)", () => {
  const available = new Set([...scraped13, ...serviceScraped, 'up']);
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

  test.each(environmentNames())('accepts every dashboard and rule expression of %s', async (name) => {
    const errors: string[] = [];
    for (const { where, expr } of shippedExpressions(loadEnvironment(name))) {
      const r = await query(expr, url());
      if (r.status !== 'success') errors.push(`${where}: ${r.error ?? r.status}`);
    }
    expect(errors).toEqual([]);
  });

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
    expect(groups.map((g) => g.name).sort()).toEqual(['fastnext-alerts', 'fastnext-recording']);
    expect(groups.flatMap((g) => g.rules.filter((x) => x.health !== 'ok'))).toEqual([]);
  });
});
