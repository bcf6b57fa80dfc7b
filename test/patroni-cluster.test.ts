/**
 * The PatroniCluster and PgBouncerPool constructs in every environment, their prop errors,
 * the rendered patroni.yml / pgbouncer.ini, and the connection budget the config refuses.
 */
import { Chart, Testing } from 'cdk8s';
import { alertRules } from '../constructs/monitoring/alert-rules';
import { parse } from 'yaml';
import { PgBouncerPool } from '../constructs/pgbouncer/pgbouncer-pool';
import { checkPatroniTimings, cidrProblem } from '../constructs/postgres/patroni-files';
import { PatroniCluster, POSTGRES_ROLE_LABEL, RUNTIME_LABELS_ANNOTATION } from '../constructs/postgres/patroni-cluster';
import type { Resources } from '../constructs/core/quantity';
import { connectionBudget, connectionBudgetProblems } from '../stacks/connection-budget';
import { loadEnvironment } from '../stacks/environments';
import { ENVS, find, type Obj, objectsOf, ofKind, selects } from './helpers/objects';
import { errorFor } from './helpers/config-errors';
import { docAnchors } from './helpers/docs';
import { MINIMAL_PATRONI_PROPS } from './helpers/patroni-props';

const small: Resources = {
  requests: { cpu: '100m', memory: '256Mi' },
  limits: { cpu: '1', memory: '512Mi' },
};
const chart = () => new Chart(Testing.app(), 'test', { namespace: 'ns' });
const clusterProps = MINIMAL_PATRONI_PROPS;
const pod = clusterProps.clients[0];
const poolProps = {
  image: 'pgb:1',
  exporterImage: 'pgbexp:1',
  resources: small,
  exporterResources: small,
  clients: [pod],
  database: {
    primaryHost: 'postgres-primary.ns.svc.cluster.local',
    port: 5432,
    database: 'fastnext',
    user: 'fastnext',
    credentialsSecret: 'postgres-credentials',
    peers: [pod],
  },
};

describe.each(ENVS)('%s', (env) => {
  const objects = objectsOf(env);
  const config = loadEnvironment(env);
  const sts = find(objects, 'StatefulSet', 'postgres');
  const patroni = parse(find(objects, 'ConfigMap', 'postgres-files').data['patroni.yml']);
  const files = find(objects, 'ConfigMap', 'postgres-files').data as Record<string, string>;
  const podLabels = sts.spec.template.metadata.labels;

  test('stateful names are pinned: StatefulSet postgres, its headless Service, PVC data, ConfigMap, Secret', () => {
    // Renaming any of these replaces the volumes or the cluster's identity (Patroni scope = StatefulSet name).
    expect([sts.spec.serviceName, sts.spec.volumeClaimTemplates.map((v: Obj) => v.metadata.name)]).toEqual([
      'postgres-headless',
      ['data'],
    ]);
    expect(patroni.scope).toBe('postgres');
    expect(
      find(
        objects,
        'Job',
        objects.find((o) => o.kind === 'Job' && o.metadata.name.startsWith('postgres-credentials'))!.metadata.name,
      ),
    ).toBeDefined();
  });

  test("no ConfigMap we ship takes a name Patroni's Kubernetes DCS creates for itself", () => {
    // Patroni creates `<scope>-config` (dynamic config, initialize key, history), `-leader`, `-failover`,
    // `-sync`, `-failsafe` (dcs/kubernetes.py: client_path). Its create of an object that exists answers
    // 409, which Patroni treats as a lost race, silently: the initialize lock is never taken, no member
    // ever bootstraps. Objects it made carry the scope label; ours never do.
    const patroniOwned = ['config', 'leader', 'failover', 'sync', 'failsafe'].map((k) => `${patroni.scope}-${k}`);
    const configMaps = ofKind(objects, 'ConfigMap').map((o) => o.metadata.name);
    expect(configMaps).toContain('postgres-files');
    expect(configMaps.filter((n) => patroniOwned.includes(n))).toEqual([]);
  });

  test('one StatefulSet of 1 + replicas members, each running Patroni with the PostgreSQL exporter beside it', () => {
    expect(sts.spec.replicas).toBe(1 + config.postgres.replicas);
    const [patroniContainer, exporter] = sts.spec.template.spec.containers;
    // The shipped entry point (patroni-start.sh) writes the passwords from the credentials volume and execs
    // Patroni on its config directory: no password in PATRONI_* env, which would override a reload.
    expect(patroniContainer.command).toEqual(['sh', '/etc/patroni/patroni-start.sh']);
    expect(files['patroni-start.sh']).toMatch(/exec patroni "\$dir"\n$/);
    const env = Object.fromEntries(patroniContainer.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
    expect(Object.keys(env).filter((k) => /^PATRONI_.*PASSWORD/.test(k))).toEqual([]);
    expect(env.PATRONI_CONFIG_FILE).toBe('/etc/patroni/patroni.yml');
    expect([env.POSTGRES_SUPERUSER_PASSWORD_FILE, env.POSTGRES_REPLICATION_PASSWORD_FILE]).toEqual([
      '/etc/patroni-credentials/superuser-password',
      '/etc/patroni-credentials/replication-password',
    ]);
    expect(patroniContainer.volumeMounts).toContainEqual({
      name: 'credentials',
      mountPath: '/etc/patroni-credentials',
      readOnly: true,
    });
    expect(sts.spec.template.spec.volumes.find((v: Obj) => v.name === 'credentials').secret).toEqual({
      secretName: 'postgres-credentials',
      items: [
        { key: 'superuser-password', path: 'superuser-password' },
        { key: 'replication-password', path: 'replication-password' },
      ],
      defaultMode: 0o440,
    });
    expect(patroniContainer.image).toBe(config.postgres.image);
    expect(exporter.image).toBe(config.postgres.exporterImage);
    expect(patroniContainer.readinessProbe.httpGet.path).toBe('/readiness');
    // Patroni's /liveness and a diverged replica's repair, by the shipped script (patroni-liveness.test.ts).
    expect(patroniContainer.livenessProbe.exec.command).toEqual([
      'python3',
      '/etc/patroni/liveness.py',
      'http://127.0.0.1:8008',
    ]);
    expect(patroniContainer.startupProbe.httpGet.path).toBe('/liveness');
  });

  test('least-privilege Role: ConfigMaps (leader lock) and pods (role label), nothing else; only this pod mounts a token', () => {
    const role = find(objects, 'Role', 'postgres');
    expect(role.rules.map((r: Obj) => [r.resources, r.verbs.length]).sort()).toEqual([
      [['configmaps'], 7],
      [['pods'], 5],
    ]);
    expect(role.rules.find((r: Obj) => r.resources[0] === 'pods').verbs).not.toContain('create');
    const binding = find(objects, 'RoleBinding', 'postgres');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'postgres', namespace: config.namespace }]);
    expect(sts.spec.template.spec.automountServiceAccountToken).toBe(true);
    expect(patroni.kubernetes).toMatchObject({
      namespace: config.namespace,
      use_endpoints: false,
      role_label: POSTGRES_ROLE_LABEL,
    });
  });

  test("primary Service selects Patroni's leader label, read-only the replica label; Patroni lists members by labels the pods carry", () => {
    const rw = find(objects, 'Service', 'postgres-primary');
    const ro = find(objects, 'Service', 'postgres-readonly');
    expect(rw.spec.selector[POSTGRES_ROLE_LABEL]).toBe('master');
    expect(ro.spec.selector[POSTGRES_ROLE_LABEL]).toBe('replica');
    for (const s of [rw, ro]) {
      expect(s.metadata.annotations?.[RUNTIME_LABELS_ANNOTATION]).toBe(POSTGRES_ROLE_LABEL);
      const rest = Object.fromEntries(
        Object.entries(s.spec.selector as Record<string, string>).filter(([k]) => k !== POSTGRES_ROLE_LABEL),
      );
      expect(selects(rest, podLabels)).toBe(true);
    }
    expect(selects({ ...patroni.kubernetes.labels, [patroni.kubernetes.scope_label]: patroni.scope }, podLabels)).toBe(
      true,
    );
  });

  test('patroni.yml: synchronous_mode from the config, slots, pg_rewind, failover lag bound, timings, tuning', () => {
    const dcs = patroni.bootstrap.dcs;
    const p = config.postgres;
    expect(dcs.synchronous_mode).toBe(p.synchronousReplicas > 0);
    expect(dcs.synchronous_node_count).toBe(p.synchronousReplicas > 0 ? p.synchronousReplicas : undefined);
    expect(dcs).toMatchObject({
      ttl: p.patroni.ttlSeconds,
      loop_wait: p.patroni.loopWaitSeconds,
      retry_timeout: p.patroni.retryTimeoutSeconds,
      maximum_lag_on_failover: p.patroni.maximumLagOnFailoverBytes,
      postgresql: {
        use_pg_rewind: true,
        use_slots: true,
        parameters: {
          max_connections: p.maxConnections,
          wal_log_hints: 'on',
          shared_preload_libraries: 'pg_stat_statements',
          synchronous_commit: p.synchronousCommit,
        },
      },
    });
    expect(dcs.postgresql.parameters.synchronous_standby_names).toBeUndefined();
    expect(patroni.postgresql.pg_hba.at(-2)).toBe('host all all 0.0.0.0/0 reject');
    expect(patroni.bootstrap.post_bootstrap).toBe('sh /etc/patroni/post-bootstrap.sh');
  });

  test('the API serves through PgBouncer; its migrate init container and the partition CronJob go straight to the primary', () => {
    const api = find(objects, 'Deployment', 'api').spec.template.spec;
    const envOf = (c: Obj) => Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
    const ns = config.namespace;
    expect(envOf(api.containers[0]).POSTGRES_SERVER).toBe(`pgbouncer.${ns}.svc.cluster.local:6432`);
    expect(envOf(api.containers[0]).POSTGRES_READ_REPLICAS).toBe(`pgbouncer-readonly.${ns}.svc.cluster.local:6432`);
    expect(envOf(api.initContainers[0]).POSTGRES_SERVER).toBe(`postgres-primary.${ns}.svc.cluster.local:5432`);
    const cron = find(objects, 'CronJob', 'api-partition-maintenance').spec.jobTemplate.spec.template.spec;
    expect(envOf(cron.containers[0]).POSTGRES_SERVER).toBe(`postgres-primary.${ns}.svc.cluster.local:5432`);
  });

  test('PgBouncer: >= 2 pods, PDB, distinct liveness and readiness, exporter sidecar, transaction pooling to the right Service', () => {
    for (const [name, server] of [
      ['pgbouncer', 'postgres-primary'],
      ['pgbouncer-readonly', 'postgres-readonly'],
    ]) {
      const d = find(objects, 'Deployment', name);
      expect(d.spec.replicas).toBe(config.pgbouncer.replicas);
      expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
      const [bouncer, exporter] = d.spec.template.spec.containers;
      expect(bouncer.readinessProbe.tcpSocket).toBeDefined();
      expect(bouncer.livenessProbe.exec).toBeDefined();
      expect(exporter.image).toBe(config.pgbouncer.exporterImage);
      expect(find(objects, 'PodDisruptionBudget', name).spec.maxUnavailable).toBe(1);
      const ini = find(objects, 'ConfigMap', `${name}-config`).data['pgbouncer.ini'];
      expect(ini).toContain('pool_mode = transaction');
      expect(ini).toContain(
        `${config.postgres.database} = host=${server}.${config.namespace}.svc.cluster.local port=5432`,
      );
      expect(ini).toMatch(/server_login_retry = 1\n/);
      expect(ini).toContain(`default_pool_size = ${config.pgbouncer.poolSize}`);
      const np = find(objects, 'NetworkPolicy', name);
      expect(np.spec.ingress[0].from.map((p: Obj) => p.podSelector.matchLabels['app.kubernetes.io/name'])).toEqual([
        'api',
      ]);
    }
  });

  test('the shipped config fits its connection budget', () => {
    expect(connectionBudgetProblems(config)).toEqual([]);
    const b = connectionBudget(config);
    expect(b.leaderTotal).toBeLessThanOrEqual(config.postgres.maxConnections);
    expect(ofKind(objects, 'Deployment').filter((d) => /^pgbouncer/.test(d.metadata.name))).toHaveLength(2);
  });
});

describe('connection budget (config)', () => {
  test('fails when the leader would need more than max_connections, naming the numbers, the env and a fix', () => {
    expect(errorFor({ postgres: { maxConnections: 60 } })).toBe(
      "Invalid config for environment 'prod':\n" +
        "  - postgres.maxConnections: 60 is below the leader's worst case of 77 connections: PgBouncer 2 pods x (poolSize 20 + reservePoolSize 5) = 50, " +
        'migrations 20 (one per API pod at HPA max), CronJob 1, reserved 6: set postgres.maxConnections to 77',
    );
  });

  test('fails when the API at HPA max opens more clients than PgBouncer accepts with one pod lost', () => {
    expect(errorFor({ pgbouncer: { maxClientConnections: 1000 } })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - pgbouncer.maxClientConnections: 1000 is too small: 20 API pods at HPA max x 60 connections each ' +
        '(api.db.poolSize + maxOverflow) = 1200 clients, but 1 PgBouncer pod(s) left after one is lost accept 1000: ' +
        'set pgbouncer.maxClientConnections to 1200',
    );
  });

  test('fails when Patroni could lose its leader key before renewing it (loop_wait + 2 x retry_timeout > ttl)', () => {
    expect(errorFor({ postgres: { patroni: { ttlSeconds: 10, loopWaitSeconds: 2, retryTimeoutSeconds: 5 } } })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.patroni.ttlSeconds: 10 must be >= loopWaitSeconds + 2 x retryTimeoutSeconds (12) so a leader renews its key before it expires',
    );
  });

  test('a forked environment with a bigger API fits once the fix in the message is applied', () => {
    // GIVEN a fork with twice the API pods and a smaller server
    const bigger = { api: { autoscaling: { maxReplicas: 40 } }, pgbouncer: { maxClientConnections: 2400 } };
    // THEN it is refused with the fix, and accepted with it
    expect(errorFor({ ...bigger, postgres: { maxConnections: 90 } })).toContain('set postgres.maxConnections to 97');
    expect(() => loadEnvironment('prod', { ...bigger, postgres: { maxConnections: 97 } })).not.toThrow();
  });
});

describe('construct props', () => {
  test('fails when synchronousReplicas exceeds replicas', () => {
    expect(() => new PatroniCluster(chart(), 'pg', { ...clusterProps, replicas: 1, synchronousReplicas: 2 })).toThrow(
      "'synchronousReplicas' (2) must be <= 'replicas' (1): a commit cannot wait for replicas that do not exist",
    );
  });

  test('fails when the Patroni timings let the leader key expire', () => {
    expect(
      () =>
        new PatroniCluster(chart(), 'pg', {
          ...clusterProps,
          patroni: { ttlSeconds: 10, loopWaitSeconds: 2, retryTimeoutSeconds: 5, maximumLagOnFailoverBytes: 1 },
        }),
    ).toThrow(
      "'patroni.ttlSeconds' (10) must be >= loopWaitSeconds + 2 x retryTimeoutSeconds (12): raise ttlSeconds to 12 or lower loopWaitSeconds / retryTimeoutSeconds",
    );
    expect(() => checkPatroniTimings({ ttlSeconds: 12, loopWaitSeconds: 2, retryTimeoutSeconds: 5 })).not.toThrow();
  });

  test.each([
    ['10.0.0.0', 'must be an IPv4 or IPv6 CIDR (address/prefix length) such as 10.0.0.0/8, 100.64.0.0/10 or fd00::/8'],
    [
      '10.0.0/8',
      "has no valid IPv4 or IPv6 address before '/': write a CIDR such as 10.0.0.0/8, 100.64.0.0/10 or fd00::/8",
    ],
    ['10.0.0.0/33', 'has a prefix length above 32 (the most an IPv4 address has)'],
    ['fd00::/129', 'has a prefix length above 128 (the most an IPv6 address has)'],
    ['10.1.2.3/8', 'has host bits set after the /8 prefix, which pg_hba.conf does not allow: write 10.0.0.0/8'],
    ['fd00:10::1/56', 'has host bits set after the /56 prefix, which pg_hba.conf does not allow: write fd00:10::/56'],
    [
      'fd00::g/64',
      "has no valid IPv4 or IPv6 address before '/': write a CIDR such as 10.0.0.0/8, 100.64.0.0/10 or fd00::/8",
    ],
  ])('fails when an allowed CIDR is %s', (cidr, message) => {
    expect(cidrProblem(cidr)).toBe(message);
    expect(() => new PatroniCluster(chart(), 'pg', { ...clusterProps, allowedCidrs: ['10.0.0.0/8', cidr] })).toThrow(
      `'allowedCidrs[1]' (${cidr}) ${message}`,
    );
  });

  test('fails when the exporter would share the credentials Secret', () => {
    expect(
      () => new PatroniCluster(chart(), 'pg', { ...clusterProps, exporterCredentialsSecret: 'postgres-credentials' }),
    ).toThrow(
      "'exporterCredentialsSecret' (postgres-credentials) must differ from 'credentialsSecret': each Secret is generated with its own keys",
    );
  });

  test('fails when TLS is on without a certificate source (generate: false, no secretName): field, value and fix', () => {
    expect(() => new PatroniCluster(chart(), 'pg', { ...clusterProps, tls: { generate: false } })).toThrow(
      "'tls.generate' (false) leaves TLS without a certificate source: name the Secret holding tls.crt, tls.key and ca.crt in 'tls.secretName' " +
        "(e.g. a cert-manager Certificate's secretName), let it be generated (generate: true), or turn TLS off (enabled: false)",
    );
    expect(() => new PatroniCluster(chart(), 'pg', { ...clusterProps, tls: { secretName: 'Bad_Name' } })).toThrow(
      "'tls.secretName' (Bad_Name)",
    );
  });

  test('tls: generated by default (a generator Job for the members, the poolers and loopback); a named Secret is not generated; off is plaintext', () => {
    const objs = (extra: object, more: object = {}) => {
      const c = chart();
      new PatroniCluster(c, 'pg', { ...clusterProps, ...extra, ...more });
      return Testing.synth(c);
    };
    const gen = (o: Obj[]) =>
      o.filter(
        (x) => x.kind === 'Job' && (x.metadata.annotations ?? {})['fastnext.io/creates-secrets'] === 'postgres-tls',
      );
    const byDefault = objs({}, { tlsDnsNames: ['pgbouncer.ns.svc.cluster.local'] });
    const [job] = gen(byDefault);
    const env = Object.fromEntries(
      (job.spec.template.spec.containers[0].env as { name: string; value?: string }[]).map((e) => [e.name, e.value]),
    );
    expect(env.TLS_DNS_NAMES!.split(' ')).toEqual(
      expect.arrayContaining(['pgbouncer.ns.svc.cluster.local', 'localhost']),
    );
    expect(env.TLS_DNS_NAMES).toMatch(/postgres-primary\.ns\.svc/);
    expect(env.TLS_IP_ADDRESSES).toBe('127.0.0.1');
    const sts = byDefault.find((o) => o.kind === 'StatefulSet')!;
    expect(sts.spec.template.spec.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'postgres-tls', defaultMode: 0o440 },
    });
    expect(sts.spec.template.spec.containers.map((c: { name: string }) => c.name)).toContain('tls-reload');
    const named = objs({ tls: { secretName: 'postgres-cert' } });
    expect(gen(named)).toEqual([]);
    expect(named.find((o) => o.kind === 'StatefulSet')!.spec.template.spec.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'postgres-cert', defaultMode: 0o440 },
    });
    const off = objs({ tls: { enabled: false } });
    expect(gen(off)).toEqual([]);
    const offSts = off.find((o) => o.kind === 'StatefulSet')!;
    expect(offSts.spec.template.spec.containers.map((c: { name: string }) => c.name)).not.toContain('tls-reload');
    const hba = parse(
      new PatroniCluster(chart(), 'pg', { ...clusterProps, tls: { enabled: false } }).files['patroni.yml'],
    ).postgresql.pg_hba as string[];
    expect(hba.some((l) => l.startsWith('hostssl'))).toBe(false);
  });

  test('fails when no network is allowed', () => {
    expect(() => new PatroniCluster(chart(), 'pg', { ...clusterProps, allowedCidrs: [] })).toThrow(
      "'allowedCidrs' ([]) must name at least one network: the members replicate over it and clients connect from it (default: today's RFC 1918 ranges)",
    );
  });

  test('allowedCidrs: IPv4 and IPv6 networks each get the replication, rewind and application rules; default RFC 1918 (hostssl: TLS is on by default)', () => {
    for (const ok of ['100.64.0.0/10', 'fd00:10::/56', '::ffff:10.0.0.0/104', '0.0.0.0/0', '2001:db8::/32'])
      expect([ok, cidrProblem(ok)]).toEqual([ok, undefined]);
    const hbaOf = (extra: object) =>
      parse(new PatroniCluster(chart(), 'pg', { ...clusterProps, ...extra }).files['patroni.yml']).postgresql.pg_hba;
    const custom = hbaOf({ allowedCidrs: ['100.64.0.0/10', 'fd00:10::/56'] }) as string[];
    expect(custom.filter((l) => /100\.64|fd00/.test(l))).toEqual([
      'hostssl replication replicator 100.64.0.0/10 scram-sha-256',
      'hostssl replication replicator fd00:10::/56 scram-sha-256',
      'hostssl postgres rewinder 100.64.0.0/10 scram-sha-256',
      'hostssl postgres rewinder fd00:10::/56 scram-sha-256',
      'hostssl fastnext fastnext 100.64.0.0/10 scram-sha-256',
      'hostssl fastnext fastnext fd00:10::/56 scram-sha-256',
      // The migration role, to the application's database only, like the runtime role.
      'hostssl fastnext fastnext_migrator 100.64.0.0/10 scram-sha-256',
      'hostssl fastnext fastnext_migrator fd00:10::/56 scram-sha-256',
      // The superuser (the roles Job) to its own and the application's database only.
      'hostssl postgres,fastnext postgres 100.64.0.0/10 scram-sha-256',
      'hostssl postgres,fastnext postgres fd00:10::/56 scram-sha-256',
    ]);
    expect(custom.some((l) => l.includes('10.0.0.0/8'))).toBe(false);
    expect((hbaOf({}) as string[]).filter((l) => l.startsWith('hostssl fastnext'))).toEqual([
      'hostssl fastnext fastnext 10.0.0.0/8 scram-sha-256',
      'hostssl fastnext fastnext 172.16.0.0/12 scram-sha-256',
      'hostssl fastnext fastnext 192.168.0.0/16 scram-sha-256',
      'hostssl fastnext fastnext_migrator 10.0.0.0/8 scram-sha-256',
      'hostssl fastnext fastnext_migrator 172.16.0.0/12 scram-sha-256',
      'hostssl fastnext fastnext_migrator 192.168.0.0/16 scram-sha-256',
    ]);
  });

  test('fails when no client may connect to PostgreSQL', () => {
    expect(() => new PatroniCluster(chart(), 'pg', { ...clusterProps, clients: [] })).toThrow(
      "'clients' is empty: name the pods allowed to connect to PostgreSQL (e.g. the pooler)",
    );
  });

  test('fails when PgBouncer would run one pod', () => {
    expect(() => new PgBouncerPool(chart(), 'pool', { ...poolProps, replicas: 1 })).toThrow(
      "'replicas' (1) must be an integer >= 2: with one pod, its eviction cuts every client off",
    );
  });

  test('fails when server_login_retry would stall queries after a failover', () => {
    expect(() => new PgBouncerPool(chart(), 'pool', { ...poolProps, serverLoginRetrySeconds: 15 })).toThrow(
      "'serverLoginRetrySeconds' (15) must be <= 5: every query stalls that long after a failover",
    );
  });

  test('defaults: 3 members, asynchronous, 2 PgBouncer pods; outputs name the Services', () => {
    const c = chart();
    const pg = new PatroniCluster(c, 'pg', clusterProps);
    const pool = new PgBouncerPool(c, 'pool', poolProps);
    expect([pg.members, pg.primaryHost, pg.readOnlyHost]).toEqual([
      3,
      'postgres-primary.ns.svc.cluster.local',
      'postgres-readonly.ns.svc.cluster.local',
    ]);
    expect([
      pool.host,
      pool.replicas,
      pool.capacity.serverConnections,
      pool.capacity.clientConnectionsOnePodDown,
    ]).toEqual(['pgbouncer.ns.svc.cluster.local', 2, 50, 1500]);
    expect(parse(pg.files['patroni.yml']).bootstrap.dcs.synchronous_mode).toBe(false);
  });
});

test('every Patroni and PgBouncer alert links a section of docs/postgres-runbook.md that exists', () => {
  const anchors = docAnchors('postgres-runbook.md');
  const tier = alertRules(loadEnvironment('prod')).filter((r) => /^(Patroni|PgBouncer)/.test(r.alert));
  const links = tier.map((r) => [
    r.alert,
    /docs\/postgres-runbook\.md#([a-z0-9-]+)/.exec(r.annotations.description)?.[1] ?? '',
  ]);
  expect(tier).toHaveLength(9);
  expect(links.filter(([, a]) => !anchors.has(a))).toEqual([]);
});
