/**
 * Invariants of the PostgresCluster construct in every environment, its config
 * errors, and the pure render functions of its files.
 */
import { execFileSync } from 'node:child_process';
import { Chart, Testing } from 'cdk8s';
import { ConfigError } from '../stacks/config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { postgresConfigFiles, postgresMemory, renderPgHba, renderPostgresqlConf } from '../constructs/postgres/files';
import { PostgresCluster, POSTGRES_ROLE_LABEL } from '../constructs/postgres/postgres-cluster';
import { podsOf } from '../constructs/core/network';
import { buildPlatform } from '../stacks/synth';
import { ENVS, find, generatorJob, type Obj, objectsOf, ofKind, selects } from './helpers/objects';

const pgObjects = (objects: Obj[]) =>
  objects.filter((o) => o.metadata?.labels?.['app.kubernetes.io/name']?.startsWith('postgres'));

describe.each(ENVS)('%s', (env) => {
  const objects = objectsOf(env);
  const config = loadEnvironment(env);
  const primary = find(objects, 'StatefulSet', 'postgres-primary');
  const replica = find(objects, 'StatefulSet', 'postgres-replica');

  test('stateful names are pinned: StatefulSets, their headless Services, PVC templates, ConfigMap, Secret', () => {
    // Renaming any of these replaces the volumes (data loss) or breaks the replicas' bootstrap.
    expect([primary.spec.serviceName, primary.spec.volumeClaimTemplates.map((v: Obj) => v.metadata.name)]).toEqual([
      'postgres-primary-headless',
      ['data'],
    ]);
    expect([replica.spec.serviceName, replica.spec.volumeClaimTemplates.map((v: Obj) => v.metadata.name)]).toEqual([
      'postgres-replica-headless',
      ['data'],
    ]);
    expect(
      pgObjects(objects)
        .map((o) => `${o.kind}/${o.metadata.name}`.replace(/^(Job\/.*)-[0-9a-f]{8}$/, '$1-<hash>'))
        .sort(),
    ).toEqual([
      'ConfigMap/postgres-config',
      'Job/postgres-credentials-generator-<hash>',
      'NetworkPolicy/postgres',
      'NetworkPolicy/postgres-credentials-generator',
      'PodDisruptionBudget/postgres',
      'Role/postgres-credentials-generator',
      'RoleBinding/postgres-credentials-generator',
      'Service/postgres-primary',
      'Service/postgres-primary-headless',
      'Service/postgres-readonly',
      'Service/postgres-replica-headless',
      'ServiceAccount/postgres',
      'ServiceAccount/postgres-credentials-generator',
      'StatefulSet/postgres-primary',
      'StatefulSet/postgres-replica',
    ]);
  });

  test('one primary and the configured number of replicas, each with a PVC of the configured size', () => {
    expect([primary.spec.replicas, replica.spec.replicas]).toEqual([1, config.postgres.replicas]);
    for (const s of [primary, replica]) {
      expect(s.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe(config.postgres.storage.size);
      expect(s.spec.volumeClaimTemplates[0].spec.storageClassName).toBe(
        config.postgres.storage.storageClass ?? config.storageClass,
      );
      expect(s.spec.template.spec.containers[0].image).toBe(config.postgres.image);
    }
  });

  test('RW Service selects only the primary, RO only the replicas; headless Services publish ready pods only', () => {
    const rw = find(objects, 'Service', 'postgres-primary');
    const ro = find(objects, 'Service', 'postgres-readonly');
    const primaryLabels = primary.spec.template.metadata.labels;
    const replicaLabels = replica.spec.template.metadata.labels;
    expect([selects(rw.spec.selector, primaryLabels), selects(rw.spec.selector, replicaLabels)]).toEqual([true, false]);
    expect([selects(ro.spec.selector, primaryLabels), selects(ro.spec.selector, replicaLabels)]).toEqual([false, true]);
    expect([primaryLabels[POSTGRES_ROLE_LABEL], replicaLabels[POSTGRES_ROLE_LABEL]]).toEqual(['primary', 'replica']);
    for (const name of ['postgres-primary-headless', 'postgres-replica-headless']) {
      const spec = find(objects, 'Service', name).spec;
      expect([spec.clusterIP, spec.publishNotReadyAddresses]).toEqual(['None', undefined]);
    }
  });

  test('the ConfigMap holds exactly the rendered files (the bytes the real-server tests run)', () => {
    expect(find(objects, 'ConfigMap', 'postgres-config').data).toEqual(postgresConfigFiles(config.postgres));
  });

  test('passwords only come from the Secret, which a create-only Job generates; no Secret is in the output', () => {
    expect(ofKind(objects, 'Secret').filter((s) => s.metadata.name === config.postgres.credentialsSecret)).toEqual([]);
    for (const s of [primary, replica]) {
      for (const c of s.spec.template.spec.containers) {
        for (const e of (c.env ?? []).filter((v: Obj) => /PASS/.test(v.name))) {
          expect([e.name, e.value, e.valueFrom?.secretKeyRef?.name]).toEqual([
            e.name,
            undefined,
            config.postgres.credentialsSecret,
          ]);
        }
      }
    }
    const job = generatorJob(objects, config.postgres.credentialsSecret);
    expect(job.metadata.annotations!['fastnext.io/creates-secrets']).toBe(config.postgres.credentialsSecret);
    const env = Object.fromEntries(job.spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value]));
    expect([env.SECRET_NAME, env.SECRET_KEYS]).toEqual([
      config.postgres.credentialsSecret,
      'password replication-password superuser-password',
    ]);
  });

  test('the generator may only create Secrets', () => {
    expect(find(objects, 'Role', 'postgres-credentials-generator').rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
  });

  test('replicas bootstrap from the RW Service and know their pod name (their slot)', () => {
    const env = Object.fromEntries(
      replica.spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]),
    );
    expect(env.PRIMARY_HOST).toBe(`postgres-primary.${config.namespace}.svc.cluster.local`);
    expect(env.POD_NAME).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(replica.spec.template.spec.containers[0].command).toEqual(['sh', '/etc/postgresql/replica-start.sh']);
    expect(primary.spec.template.spec.containers[0].command).toEqual(['sh', '/etc/postgresql/primary-start.sh']);
  });

  test('pods run as the image postgres user with a read-only root fs and writable emptyDirs', () => {
    for (const s of [primary, replica]) {
      const spec = s.spec.template.spec;
      expect(spec.securityContext).toMatchObject({ runAsUser: 999, runAsNonRoot: true });
      const mounts = spec.containers[0].volumeMounts.map((m: Obj) => m.mountPath).sort();
      expect(mounts).toEqual([
        '/dev/shm',
        '/etc/postgresql',
        '/tmp',
        '/var/lib/postgresql/data',
        '/var/run/postgresql',
      ]);
      expect(spec.containers.map((c: Obj) => c.securityContext.readOnlyRootFilesystem)).toEqual([true, true]);
      expect(
        spec.containers[0].startupProbe.failureThreshold * spec.containers[0].startupProbe.periodSeconds,
      ).toBeGreaterThanOrEqual(3600);
    }
  });

  test('NetworkPolicy: 5432 from the API, its CronJob and the tier itself; the exporter port from Prometheus only', () => {
    const np = find(objects, 'NetworkPolicy', 'postgres');
    const from = (rule: Obj) => rule.from.map((p: Obj) => p.podSelector.matchLabels['app.kubernetes.io/name']).sort();
    expect(np.spec.ingress.map((r: Obj) => [from(r), r.ports.map((p: Obj) => p.port)])).toEqual([
      [['api', 'api-maintenance'], [5432]],
      [['postgres'], [5432]],
      [['prometheus'], [9187]],
    ]);
    expect(np.spec.egress[1]).toEqual({
      to: [
        {
          podSelector: {
            matchLabels: { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'fastnext' },
          },
        },
      ],
      ports: [{ protocol: 'TCP', port: 5432 }],
    });
  });

  test('PDB lets one database pod be evicted at a time', () => {
    const pdb = find(objects, 'PodDisruptionBudget', 'postgres');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(selects(pdb.spec.selector.matchLabels, primary.spec.template.metadata.labels)).toBe(true);
  });

  test('the API is wired to the construct readonly fields', () => {
    const { platform } = buildPlatform(config);
    const api = find(objects, 'Deployment', 'api');
    const env = Object.fromEntries(api.spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value]));
    expect(env.POSTGRES_SERVER).toBe(`${platform.postgres.primaryHost}:${platform.postgres.port}`);
    expect(env.POSTGRES_DB).toBe(platform.postgres.database);
  });
});

test('prod: memory settings derive from the 1Gi request and commits wait for ANY 1 replica', () => {
  const conf = renderPostgresqlConf(loadEnvironment('prod').postgres);
  expect(conf).toContain('shared_buffers = 256MB\n');
  expect(conf).toContain('effective_cache_size = 768MB\n');
  expect(conf).toContain("synchronous_standby_names = 'ANY 1 (*)'\n");
  expect(renderPostgresqlConf(loadEnvironment('dev').postgres)).toContain("synchronous_standby_names = ''\n");
});

test('work_mem spreads what shared_buffers leaves over the connections', () => {
  const p = loadEnvironment('prod').postgres;
  expect(postgresMemory(p)).toEqual({
    sharedBuffersMB: 256,
    effectiveCacheSizeMB: 768,
    maintenanceWorkMemMB: 64,
    workMemKB: 1310,
  });
});

test('pg_hba.conf: replication only for the replicator, the app role only to its database, the rest rejected', () => {
  const hba = renderPgHba(loadEnvironment('dev').postgres, ['10.0.0.0/8']);
  const rules = hba
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(/\s+/).join(' '));
  expect(rules).toEqual([
    'local all postgres peer',
    'local all all scram-sha-256',
    'host all all 127.0.0.0/8 scram-sha-256',
    'host replication replicator 127.0.0.0/8 scram-sha-256',
    'host replication replicator 10.0.0.0/8 scram-sha-256',
    'host fastnext fastnext 10.0.0.0/8 scram-sha-256',
    'host all all 0.0.0.0/0 reject',
    'host all all ::/0 reject',
  ]);
});

describe('config errors', () => {
  test('fails when postgres.replicas is above 5', () => {
    expect(() => loadEnvironment('dev', { postgres: { replicas: 6 } })).toThrow(
      new ConfigError('dev', ['postgres.replicas: 6 must be <= 5']),
    );
  });

  test('fails when postgres.synchronousReplicas exceeds postgres.replicas', () => {
    expect(() => loadEnvironment('dev', { postgres: { synchronousReplicas: 3 } })).toThrow(
      "Invalid config for environment 'dev':\n  - postgres.synchronousReplicas: 3 must be <= replicas (2)",
    );
  });

  const chart = () => new Chart(Testing.app(), 'test');
  const base = loadEnvironment('dev');
  const clients = [podsOf('api')];

  test('fails when the construct gets replicas out of range (props not from the schema)', () => {
    expect(() => new PostgresCluster(chart(), 'pg', { replicas: -1, clients })).toThrow(
      "'replicas' (-1) must be an integer from 0 to 5",
    );
  });

  test('fails when the construct gets more synchronous replicas than replicas', () => {
    expect(() => new PostgresCluster(chart(), 'pg', { replicas: 1, synchronousReplicas: 2, clients })).toThrow(
      "'synchronousReplicas' (2) must be <= 'replicas' (1): a commit cannot wait for replicas that do not exist",
    );
  });

  test('fails when no client is named (an empty from would admit every pod)', () => {
    expect(() => new PostgresCluster(chart(), 'pg', { clients: [] })).toThrow(
      "'clients' is empty: name the pods allowed to connect to PostgreSQL (e.g. [podsOf('api')])",
    );
  });

  test('fails when the memory request is too small to size shared_buffers', () => {
    const postgres = {
      ...base.postgres,
      resources: { ...base.postgres.resources, requests: { cpu: '100m', memory: '64Mi' } },
    };
    expect(() => renderPostgresqlConf(postgres)).toThrow(
      "'resources.requests.memory' (64Mi) must be at least 128Mi: shared_buffers, work_mem and the WAL buffers are sized from it",
    );
  });

  test('fails when a pod CIDR is not an IPv4 CIDR', () => {
    expect(() => renderPgHba(base.postgres, ['10.0.0.0'])).toThrow(
      "'podCidrs' entry (10.0.0.0) must be an IPv4 CIDR such as 10.0.0.0/8",
    );
  });
});

test('zero replicas: the RO host falls back to the primary and no synchronous commit is configured', () => {
  const config = loadEnvironment('dev', { postgres: { replicas: 0 } });
  const objects = synthObjects(config) as Obj[];
  const { platform } = buildPlatform(config);
  expect(platform.postgres.readOnlyHost).toBe(platform.postgres.primaryHost);
  expect(find(objects, 'StatefulSet', 'postgres-replica').spec.replicas).toBe(0);
});

test('every shipped script parses as POSIX sh (dash)', () => {
  const scripts = Object.entries(postgresConfigFiles(loadEnvironment('prod').postgres)).filter(([name]) =>
    name.endsWith('.sh'),
  );
  expect(scripts.length).toBeGreaterThan(0);
  for (const [, text] of scripts) expect(() => execFileSync('dash', ['-n'], { input: text })).not.toThrow();
});
