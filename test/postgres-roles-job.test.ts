/**
 * The roles Job and the migration role in the manifests: what the Job runs (the ConfigMap's roles.sh,
 * the same bytes post-bootstrap.sh runs), how it connects (superuser, verify-full to the primary
 * Service), its pod's hardening and NetworkPolicy, its name, and the API workloads that wait for it.
 * The SQL itself runs on real servers in test/postgres-roles.test.ts.
 */
import { Chart, Testing } from 'cdk8s';
import { DB_STATEMENT_TIMEOUT_MS } from '../service/src/contract';
import { EXPORTER_USER, PatroniCluster } from '../constructs/postgres/patroni-cluster';
import { PATRONI_FILES } from '../constructs/postgres/patroni-files';
import { rolesScript } from '../constructs/postgres/roles-job';
import { find, objectsOf, type Obj } from './helpers/objects';
import { MINIMAL_PATRONI_PROPS } from './helpers/patroni-props';

const rolesJobOf = (objects: Obj[]): Obj => {
  const jobs = objects.filter((o) => o.kind === 'Job' && /^postgres-roles-[0-9a-f]{8}$/.test(o.metadata.name));
  expect(jobs).toHaveLength(1);
  return jobs[0];
};
const envOf = (c: Obj): Record<string, unknown> =>
  Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom]));

describe('prod: the roles Job', () => {
  const objects = objectsOf('prod');
  const job = rolesJobOf(objects);
  const pod = job.spec.template.spec;
  const [container] = pod.containers;

  test('runs the ConfigMap roles.sh, the script post-bootstrap.sh runs on a new cluster', () => {
    const files = find(objects, 'ConfigMap', 'postgres-files').data;
    expect(files[PATRONI_FILES.roles]).toBe(
      rolesScript({ statementTimeoutMs: DB_STATEMENT_TIMEOUT_MS, exporterUser: EXPORTER_USER }),
    );
    expect(files[PATRONI_FILES.postBootstrap]).toContain('sh "$(dirname "$0")/roles.sh" "$1"');
    expect(container.command).toEqual(['sh', '/etc/patroni/roles.sh', 'dbname=postgres']);
    expect(pod.volumes).toContainEqual({ name: 'config', configMap: { name: 'postgres-files', defaultMode: 0o444 } });
  });

  test('logs in as the superuser to the primary Service with verify-full, and reads every password the members do', () => {
    const env = envOf(container);
    expect(env).toMatchObject({
      PGHOST: 'postgres-primary.fastnext-prod.svc.cluster.local',
      PGPORT: '5432',
      PGUSER: 'postgres',
      PGPASSWORD: { secretKeyRef: { name: 'postgres-credentials', key: 'superuser-password' } },
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: '/etc/postgres-tls/ca.crt',
      POSTGRES_MIGRATION_USER: 'fastnext_migrator',
      POSTGRES_MIGRATION_PASSWORD: {
        secretKeyRef: { name: 'postgres-migration-credentials', key: 'migration-password' },
      },
    });
    expect(pod.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'postgres-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
    // The script's inputs are the members' post-bootstrap inputs, name for name and reference for reference.
    const patroni = find(objects, 'StatefulSet', 'postgres').spec.template.spec.containers.find(
      (c: Obj) => c.name === 'patroni',
    );
    const inputs = (e: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(e).filter(([k]) => /^POSTGRES_/.test(k) && !k.endsWith('_FILE')));
    expect(inputs(env)).toEqual(inputs(envOf(patroni)));
    expect(Object.keys(inputs(env)).sort()).toEqual([
      'POSTGRES_DB',
      'POSTGRES_EXPORTER_PASSWORD',
      'POSTGRES_MIGRATION_PASSWORD',
      'POSTGRES_MIGRATION_USER',
      'POSTGRES_PASSWORD',
      'POSTGRES_USER',
    ]);
  });

  test("is hardened like the reconfigure Job: no token, non-root, retried, no TTL, after the StatefulSet's rollout", () => {
    const reconfigure = objects.find((o) => o.kind === 'Job' && o.metadata.name.startsWith('postgres-reconfigure-'))!;
    const rpod = reconfigure.spec.template.spec;
    expect(pod.securityContext).toEqual(rpod.securityContext);
    expect(container.securityContext).toEqual(rpod.containers[0].securityContext);
    expect(container.resources).toEqual(rpod.containers[0].resources);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe('postgres-roles');
    expect(pod.restartPolicy).toBe('OnFailure');
    expect(job.spec.backoffLimit).toBe(6);
    expect(job.spec.ttlSecondsAfterFinished).toBeUndefined();
    expect(job.metadata.annotations?.['fastnext.io/runs-after']).toBe('StatefulSet/postgres');
  });

  test('its NetworkPolicy reaches only DNS and the database port of the members, which admit it', () => {
    const policy = find(objects, 'NetworkPolicy', 'postgres-roles');
    expect(policy.spec.podSelector.matchLabels['app.kubernetes.io/name']).toBe('postgres-roles');
    expect(policy.spec.ingress).toEqual([]);
    expect(policy.spec.egress.slice(1)).toEqual([
      {
        to: [
          {
            podSelector: {
              matchLabels: { 'app.kubernetes.io/instance': 'fastnext', 'app.kubernetes.io/name': 'postgres' },
            },
          },
        ],
        ports: [{ port: 5432, protocol: 'TCP' }],
      },
    ]);
    const members = find(objects, 'NetworkPolicy', 'postgres');
    expect(members.spec.ingress).toContainEqual({
      from: [
        {
          podSelector: {
            matchLabels: { 'app.kubernetes.io/instance': 'fastnext', 'app.kubernetes.io/name': 'postgres-roles' },
          },
        },
      ],
      ports: [{ port: 5432, protocol: 'TCP' }],
    });
  });

  test('the API Deployment and the partition CronJob run after it; only their migrating containers hold the role', () => {
    for (const [kind, name] of [
      ['Deployment', 'api'],
      ['CronJob', 'api-partition-maintenance'],
    ]) {
      expect(find(objects, kind, name).metadata.annotations?.['fastnext.io/runs-after']).toBe(
        `Job/${job.metadata.name}`,
      );
    }
    const deployment = find(objects, 'Deployment', 'api').spec.template.spec;
    const migrate = deployment.initContainers.find((c: Obj) => c.name === 'migrate');
    expect(envOf(migrate)).toMatchObject({
      POSTGRES_SERVER: 'postgres-primary.fastnext-prod.svc.cluster.local:5432',
      POSTGRES_USER: 'fastnext',
      POSTGRES_MIGRATION_USER: 'fastnext_migrator',
      POSTGRES_MIGRATION_PASSWORD_FILE: '/var/run/secrets/fastnext/postgres-migration/password',
    });
    expect(migrate.volumeMounts).toContainEqual({
      name: 'postgres-migration-credentials',
      mountPath: '/var/run/secrets/fastnext/postgres-migration',
      readOnly: true,
    });
    expect(deployment.volumes).toContainEqual({
      name: 'postgres-migration-credentials',
      secret: {
        secretName: 'postgres-migration-credentials',
        items: [{ key: 'migration-password', path: 'password' }],
      },
    });
    const serving = deployment.containers[0];
    expect(Object.keys(envOf(serving)).filter((k) => /MIGRATION/.test(k))).toEqual([]);
    expect(serving.volumeMounts.map((m: Obj) => m.name)).not.toContain('postgres-migration-credentials');
  });
});

describe('the roles Job elsewhere', () => {
  test('dev (TLS off): plaintext, no certificate mounted', () => {
    const job = rolesJobOf(objectsOf('dev'));
    expect(envOf(job.spec.template.spec.containers[0])).toMatchObject({ PGSSLMODE: 'disable' });
    expect(job.spec.template.spec.volumes.map((v: Obj) => v.name)).toEqual(['config', 'tmp']);
  });

  test('its name changes with the script it runs and only then', () => {
    const name = (statementTimeoutMs: number) => {
      const chart = new Chart(Testing.app(), 'c', { namespace: 'ns' });
      new PatroniCluster(chart, 'pg', { ...MINIMAL_PATRONI_PROPS, statementTimeoutMs });
      return rolesJobOf(Testing.synth(chart) as Obj[]).metadata.name;
    };
    expect(name(15000)).toBe(name(15000));
    expect(name(20000)).not.toBe(name(15000));
  });
});
