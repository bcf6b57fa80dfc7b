/**
 * The constructs as a library: each one in a bare `Testing.chart()` with minimal
 * props (no environment config) synthesizes objects that pass strict schema
 * validation and every policy check; their construct ids and the names of
 * stateful objects are pinned (renaming them replaces data); props a user
 * passes directly are checked in the constructor.
 */
import { Chart, Testing } from 'cdk8s';
import type { Construct } from 'constructs';
import {
  ALERT_DEFAULTS,
  ApiService,
  EdgeProxy,
  GeneratedSecret,
  type MonitoredPlatform,
  Monitoring,
  PatroniCluster,
  PgBouncerPool,
  RedisCluster,
  podsOf,
} from '../constructs';
import { runPolicy } from '../tools/manifests/policy/engine';
import { checkObjects } from '../tools/manifests/schema-check';
import type { KubeObject } from '../stacks/synth';
import type { Obj } from './helpers/objects';

const synth = (chart: Chart) => Testing.synth(chart) as Obj[];

/** Schema problems and policy findings (production strictness) of a chart's objects, one line each. */
function problemsOf(objects: Obj[]): string[] {
  return [
    ...checkObjects(objects).map((p) => `${p.object}: ${p.path}: ${p.message}`),
    ...runPolicy(objects as KubeObject[], { production: true }).findings.map(
      (f) => `${f.check}: ${f.object.kind}/${f.object.name}: ${f.message}`,
    ),
  ];
}

const names = (objects: Obj[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
const ids = (c: Construct): string[] => c.node.children.map((x) => x.node.id).sort();

describe('RedisCluster in a bare chart', () => {
  // GIVEN a chart of someone else's, with no namespace and no environment
  const chart = Testing.chart();
  // WHEN the cluster is added with only its clients
  const redis = new RedisCluster(chart, 'cache', { clients: [podsOf('shop')] });
  const objects = synth(chart);

  test('its objects pass strict validation and the policy checks', () => {
    expect(objects.length).toBeGreaterThan(10);
    expect(problemsOf(objects)).toEqual([]);
  });

  test('stateful names and construct ids are pinned', () => {
    expect([redis.statefulSetName, redis.headlessServiceName, redis.configMapName, redis.passwordSecret]).toEqual([
      'redis',
      'redis-headless',
      'redis-config',
      'redis-users',
    ]);
    const sts = objects.find((o) => o.kind === 'StatefulSet')!;
    expect([sts.metadata.name, sts.spec.serviceName, sts.spec.volumeClaimTemplates[0].metadata.name]).toEqual([
      'redis',
      'redis-headless',
      'data',
    ]);
    expect(ids(redis)).toEqual([
      'config',
      'create-job',
      'create-network-policy',
      'create-service-account',
      'headless',
      'network-policy',
      'password',
      'pdb',
      'service-account',
      'statefulset',
    ]);
  });

  test('a chart without a namespace gets `default`, on the objects and in the DNS names', () => {
    expect(new Set(objects.map((o) => o.metadata.namespace))).toEqual(new Set(['default']));
    expect(redis.seedHosts[0]).toBe('redis-0.redis-headless.default.svc.cluster.local');
  });

  test('the chart’s labels reach every object and pod template', () => {
    const c = new Chart(Testing.app(), 'l', { namespace: 'shop', labels: { team: 'payments' } });
    new RedisCluster(c, 'cache', { clients: [podsOf('shop')] });
    const objs = Testing.synth(c) as Obj[];
    for (const o of objs)
      expect([o.metadata.name, o.metadata.labels?.team, o.metadata.namespace]).toEqual([
        o.metadata.name,
        'payments',
        'shop',
      ]);
    const sts = objs.find((o) => o.kind === 'StatefulSet')!;
    expect(sts.spec.template.metadata.labels.team).toBe('payments');
  });

  test('a `name` renames every object, so two clusters live side by side', () => {
    const c = Testing.chart();
    new RedisCluster(c, 'a', { clients: [podsOf('shop')] });
    new RedisCluster(c, 'b', { name: 'sessions', passwordSecret: 'sessions-password', clients: [podsOf('shop')] });
    const objs = synth(c);
    expect(problemsOf(objs)).toEqual([]);
    expect(names(objs)).toEqual(
      expect.arrayContaining(['StatefulSet/redis', 'StatefulSet/sessions', 'Service/sessions-headless']),
    );
  });

  test('fails when maxmemory does not fit under the memory limit', () => {
    expect(
      () =>
        new RedisCluster(Testing.chart(), 'r', {
          clients: [podsOf('shop')],
          maxmemory: '1GB',
          resources: { requests: { cpu: '100m', memory: '1Gi' }, limits: { cpu: '1', memory: '1Gi' } },
        }),
    ).toThrow(
      "'maxmemory' (1GB) does not fit under the container's memory limit (1Gi): a node needs maxmemory + 25 % for fork copy-on-write + 65mb of replication buffers = 1345mb; set maxmemory to at most 767mb or raise the limit",
    );
  });
});

describe('PatroniCluster and PgBouncerPool in a bare chart', () => {
  const chart = Testing.chart();
  const pg = new PatroniCluster(chart, 'db', { clients: [podsOf('pgbouncer'), podsOf('shop')] });
  const pool = new PgBouncerPool(chart, 'pool', {
    database: { ...pg, peers: pg.peers, primaryHost: pg.primaryHost },
    clients: [podsOf('shop')],
  });
  const objects = synth(chart);

  test('its objects pass strict validation and the policy checks', () => {
    expect(objects.length).toBeGreaterThan(10);
    expect(problemsOf(objects)).toEqual([]);
  });

  test('stateful names and construct ids are pinned', () => {
    expect([pg.name, pg.configMapName, pg.credentialsSecret]).toEqual([
      'postgres',
      'postgres-files',
      'postgres-credentials',
    ]);
    const claims = objects
      .filter((o) => o.kind === 'StatefulSet')
      .map((s) => `${s.metadata.name}:${s.spec.serviceName}:${s.spec.volumeClaimTemplates[0].metadata.name}`);
    expect(claims).toEqual(['postgres:postgres-headless:data']);
    expect(ids(pg)).toEqual([
      'config',
      'credentials',
      'exporter-credentials',
      'headless-service',
      'members',
      // The migration role's password, its own generated Secret.
      'migration-credentials',
      'network-policy',
      'patroni-metrics-service',
      'pdb',
      'primary-service',
      'readonly-service',
      'reconfigure-job',
      'reconfigure-network-policy',
      'reconfigure-service-account',
      'role',
      'role-binding',
      // The roles Job: the roles, ownership and grants on a running cluster.
      'roles-job',
      'roles-network-policy',
      'roles-service-account',
      'service-account',
      // The TLS certificate's generator (postgres.tls on by default, no secretName).
      'tls',
    ]);
    expect(ids(pool)).toEqual(['config', 'deployment', 'network-policy', 'pdb', 'service', 'service-account']);
  });

  test('the endpoint it hands clients is the primary Service; the pool points at it', () => {
    expect([pg.host, pg.port, pg.component]).toEqual(['postgres-primary.default.svc.cluster.local', 5432, 'postgres']);
    expect(pool.files['pgbouncer.ini']).toContain('host=postgres-primary.default.svc.cluster.local port=5432');
  });

  test('fails when the memory request is malformed', () => {
    expect(
      () =>
        new PatroniCluster(Testing.chart(), 'db', {
          clients: [podsOf('shop')],
          resources: { requests: { cpu: '1', memory: '1 GB' }, limits: { cpu: '1', memory: '2Gi' } },
        }),
    ).toThrow(
      "'resources.requests.memory' (1 GB) must be a positive Kubernetes quantity such as '250m', '512Mi' or '10Gi'",
    );
  });
});

describe('ApiService in a bare chart', () => {
  const chart = Testing.chart();
  const postgres = new PatroniCluster(chart, 'db', { clients: [podsOf('api'), podsOf('api-maintenance')] });
  const redis = new RedisCluster(chart, 'cache', { clients: [podsOf('api')] });
  const api = new ApiService(chart, 'api', { postgres, redis });
  new EdgeProxy(chart, 'edge', { upstream: api.headless });
  const objects = synth(chart);

  test('with its database, cache and edge, every object passes strict validation and the policy checks', () => {
    expect(problemsOf(objects)).toEqual([]);
  });

  test('it connects to the endpoints it is given', () => {
    const env = Object.fromEntries(
      objects
        .find((o) => o.kind === 'Deployment' && o.metadata.name === 'api')!
        .spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value]),
    );
    expect(env.POSTGRES_SERVER).toBe('postgres-primary.default.svc.cluster.local:5432');
    expect(env.REDIS_CLUSTER_NODES.split(',')).toHaveLength(6);
  });

  test('construct ids are pinned', () => {
    expect(ids(api)).toEqual([
      'deployment',
      'headless',
      'hpa',
      'maintenance-network-policy',
      'management-token',
      'network-policy',
      'partition-maintenance',
      'pdb',
      'service',
      'service-account',
    ]);
  });

  test("fails when 'minReplicas' exceeds 'maxReplicas'", () => {
    expect(
      () =>
        new ApiService(Testing.chart(), 'api', {
          postgres,
          redis,
          autoscaling: { ...api.settings.autoscaling, minReplicas: 5, maxReplicas: 2 },
        }),
    ).toThrow("'autoscaling.minReplicas' (5) must be <= 'autoscaling.maxReplicas' (2)");
  });

  test('fails when the image is not pinned', () => {
    expect(() => new ApiService(Testing.chart(), 'api', { postgres, redis, image: 'shop/api:latest' })).toThrow(
      "'image' (shop/api:latest) must not use the 'latest' tag: pin a version (e.g. repo/name:1.2.3)",
    );
  });
});

describe('GeneratedSecret in a bare chart', () => {
  test('its objects pass strict validation and the policy checks', () => {
    const chart = Testing.chart();
    new GeneratedSecret(chart, 'token', { secretName: 'shop-token', keys: ['token'] });
    const objects = synth(chart);
    expect(problemsOf(objects)).toEqual([]);
    expect(names(objects).map((n) => n.replace(/^(Job\/shop-token-generator)-[0-9a-f]{8}$/, '$1-<hash>'))).toEqual([
      'Job/shop-token-generator-<hash>',
      'NetworkPolicy/shop-token-generator',
      'Role/shop-token-generator',
      'RoleBinding/shop-token-generator',
      'ServiceAccount/shop-token-generator',
    ]);
  });
});

describe('Monitoring (Prometheus, Alertmanager, Grafana, kube-state-metrics) in a bare chart', () => {
  // GIVEN only what the rules and dashboards watch, written by hand (no environment)
  const monitored: MonitoredPlatform = {
    name: 'shop',
    api: { autoscaling: { minReplicas: 2, maxReplicas: 6 } },
    edge: { autoscaling: { minReplicas: 2, maxReplicas: 4 } },
    postgres: { replicas: 1 },
    redis: { masters: 3, replicasPerMaster: 1 },
    monitoring: { alerts: ALERT_DEFAULTS, prometheus: { scrapeIntervalSeconds: 30 } },
  };
  const chart = Testing.chart();
  const monitoring = new Monitoring(chart, 'monitoring', {
    monitored,
    scrapeTargets: [{ component: 'api', port: 9464 }],
  });
  const objects = synth(chart);

  test('its objects pass strict validation and the policy checks', () => {
    expect(problemsOf(objects)).toEqual([]);
  });

  test('the Prometheus and Alertmanager StatefulSets, their PVC templates and construct ids are pinned', () => {
    const pinned = objects
      .filter((o) => o.kind === 'StatefulSet')
      .map((sts) => [sts.metadata.name, sts.spec.serviceName, sts.spec.volumeClaimTemplates[0].metadata.name])
      .sort();
    expect(pinned).toEqual([
      ['alertmanager', 'alertmanager-headless', 'data'],
      ['prometheus', 'prometheus-headless', 'data'],
    ]);
    expect(ids(monitoring)).toEqual(['alertmanager', 'grafana', 'kube-state-metrics', 'prometheus']);
    expect(monitoring.grafana.adminSecret.secretName).toBe('grafana-admin');
  });
});
