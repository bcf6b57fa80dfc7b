/**
 * `postgres.credentials`: Secrets from any source (External Secrets, Sealed Secrets, SOPS).
 * Every secretKeyRef / Secret volume item to a PostgreSQL credential uses the mapped key names;
 * `generate: false` emits no generator objects (nothing races an external controller) and the
 * deploy order still holds; bad input is refused by the schema and the constructor with field,
 * value and fix.
 */
import { Chart, Testing } from 'cdk8s';
import { PatroniCluster } from '../constructs/postgres/patroni-cluster';
import { credentialsProblems, resolveCredentials } from '../constructs/postgres/credentials-settings';
import { dependencyLayers, deployDependencies } from '../stacks/deploy-order';
import { loadEnvironment } from '../stacks/environments';
import { secretTargets, suppliedSecretSpecs } from '../stacks/pulumi-stack';
import { buildPlatform, synthObjects, type KubeObject } from '../stacks/synth';
import { runPolicy } from '../tools/manifests/policy/engine';
import { simulateCreate } from '../tools/manifests/pulumi-await/model';
import { fromObjects } from '../tools/manifests/pulumi-await/platform';
import { AWAIT_OPTIONS } from './helpers/await';
import { errorFor } from './helpers/config-errors';

const EXTERNAL = {
  secretName: 'db-credentials',
  keys: {
    password: 'app-password',
    replicationPassword: 'replication',
    superuserPassword: 'postgres-password',
    exporterPassword: 'monitoring-password',
    migrationPassword: 'migrator-password',
  },
  generate: false,
};

type Ref = { name: string; key: string };

/** Every (workload, env var or volume) reference to a key of the named Secrets. */
function refsTo(objects: readonly KubeObject[], secrets: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n) => walk(n, where));
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    const ref = (o.valueFrom as { secretKeyRef?: Ref } | undefined)?.secretKeyRef;
    if (ref && secrets.includes(ref.name)) out.push(`${where} ${String(o.name)}=${ref.name}/${ref.key}`);
    const vol = o.secret as { secretName?: string; items?: { key: string; path: string }[] } | undefined;
    if (vol?.secretName && secrets.includes(vol.secretName)) {
      for (const i of vol.items ?? []) out.push(`${where} volume ${vol.secretName}/${i.key} as ${i.path}`);
    }
    for (const v of Object.values(o)) walk(v, where);
  };
  for (const o of objects) walk(o.spec, `${o.kind}/${o.metadata.name.replace(/-[0-9a-f]{8}$/, '')}`);
  return out.sort();
}

const generatorObjects = (objects: readonly KubeObject[]) =>
  objects
    .filter((o) => /^postgres(-exporter|-migration)?-credentials-generator/.test(o.metadata.name))
    .map((o) => `${o.kind}/${o.metadata.name.replace(/-[0-9a-f]{8}$/, '')}`)
    .sort();

/** The keys the generator Job of Secret `secret` writes (its SECRET_KEYS). */
const generatedKeys = (objects: readonly KubeObject[], secret: string) =>
  (
    objects.find((o) => o.kind === 'Job' && o.metadata.name.startsWith(`${secret}-generator-`))!.spec as {
      template: { spec: { containers: { env: { name: string; value?: string }[] }[] } };
    }
  ).template.spec.containers[0].env.find((e) => e.name === 'SECRET_KEYS')?.value;

describe('postgres.credentials: the default', () => {
  test("keeps today's Secrets and keys; the migration role's password is generated in a Secret of its own", () => {
    expect(resolveCredentials(undefined, 'postgres-credentials', 'postgres-exporter-credentials')).toMatchObject({
      secretName: 'postgres-credentials',
      exporterSecretName: 'postgres-exporter-credentials',
      // Its own Secret: a postgres-credentials generated before the role existed lacks the key, and a
      // generated Secret is never regenerated.
      migrationSecretName: 'postgres-migration-credentials',
      generate: true,
      alternateLogin: false,
    });
    const objects = synthObjects(loadEnvironment('prod'));
    expect(generatorObjects(objects)).toEqual(
      ['Job', 'NetworkPolicy', 'Role', 'RoleBinding', 'ServiceAccount'].flatMap((kind) =>
        ['postgres-credentials', 'postgres-exporter-credentials', 'postgres-migration-credentials'].map(
          (secret) => `${kind}/${secret}-generator`,
        ),
      ),
    );
    const keysOf = (secret: string) => generatedKeys(objects, secret);
    expect(keysOf('postgres-credentials')).toBe('password replication-password superuser-password');
    expect(keysOf('postgres-migration-credentials')).toBe('migration-password');
    // Today's key names, as every pod reads them (the second login's keys are read only with alternateLogin).
    const secrets = ['postgres-credentials', 'postgres-exporter-credentials', 'postgres-migration-credentials'];
    expect(refsTo(objects, secrets)).toEqual([
      'CronJob/api-partition-maintenance volume postgres-credentials/password as password',
      'CronJob/api-partition-maintenance volume postgres-migration-credentials/migration-password as password',
      'Deployment/api volume postgres-credentials/password as password',
      'Deployment/api volume postgres-migration-credentials/migration-password as password',
      'Deployment/pgbouncer PGBOUNCER_PASSWORD=postgres-credentials/password',
      'Deployment/pgbouncer-readonly PGBOUNCER_PASSWORD=postgres-credentials/password',
      'Job/postgres-roles PGPASSWORD=postgres-credentials/superuser-password',
      'Job/postgres-roles POSTGRES_EXPORTER_PASSWORD=postgres-exporter-credentials/password',
      'Job/postgres-roles POSTGRES_MIGRATION_PASSWORD=postgres-migration-credentials/migration-password',
      'Job/postgres-roles POSTGRES_PASSWORD=postgres-credentials/password',
      'StatefulSet/postgres POSTGRES_EXPORTER_PASSWORD=postgres-exporter-credentials/password',
      'StatefulSet/postgres POSTGRES_MIGRATION_PASSWORD=postgres-migration-credentials/migration-password',
      'StatefulSet/postgres POSTGRES_PASSWORD=postgres-credentials/password',
      // Patroni's superuser and replication (= rewind) passwords: files, reloaded when they change.
      'StatefulSet/postgres volume postgres-credentials/replication-password as replication-password',
      'StatefulSet/postgres volume postgres-credentials/superuser-password as superuser-password',
      // The exporter's: patroni-start.sh writes it into the sidecar's passfile.
      'StatefulSet/postgres volume postgres-exporter-credentials/password as exporter-password',
    ]);
  });
});

describe('postgres.credentials: one external Secret with its own key names, generate: false', () => {
  const objects = synthObjects(loadEnvironment('prod', { postgres: { credentials: EXTERNAL } }));

  test('every reference to a PostgreSQL credential names the mapped Secret and key', () => {
    expect(refsTo(objects, ['db-credentials'])).toEqual([
      'CronJob/api-partition-maintenance volume db-credentials/app-password as password',
      'CronJob/api-partition-maintenance volume db-credentials/migrator-password as password',
      'Deployment/api volume db-credentials/app-password as password',
      'Deployment/api volume db-credentials/migrator-password as password',
      'Deployment/pgbouncer PGBOUNCER_PASSWORD=db-credentials/app-password',
      'Deployment/pgbouncer-readonly PGBOUNCER_PASSWORD=db-credentials/app-password',
      // The roles Job: the superuser logs in, and sets the others' passwords from the same keys.
      'Job/postgres-roles PGPASSWORD=db-credentials/postgres-password',
      'Job/postgres-roles POSTGRES_EXPORTER_PASSWORD=db-credentials/monitoring-password',
      'Job/postgres-roles POSTGRES_MIGRATION_PASSWORD=db-credentials/migrator-password',
      'Job/postgres-roles POSTGRES_PASSWORD=db-credentials/app-password',
      'StatefulSet/postgres POSTGRES_EXPORTER_PASSWORD=db-credentials/monitoring-password',
      'StatefulSet/postgres POSTGRES_MIGRATION_PASSWORD=db-credentials/migrator-password',
      'StatefulSet/postgres POSTGRES_PASSWORD=db-credentials/app-password',
      'StatefulSet/postgres volume db-credentials/monitoring-password as exporter-password',
      'StatefulSet/postgres volume db-credentials/postgres-password as superuser-password',
      'StatefulSet/postgres volume db-credentials/replication as replication-password',
    ]);
    // Nothing reads the default Secrets any more.
    expect(
      refsTo(objects, ['postgres-credentials', 'postgres-exporter-credentials', 'postgres-migration-credentials']),
    ).toEqual([]);
  });

  test('no generator Job, ServiceAccount, Role, RoleBinding or NetworkPolicy: nothing can race the controller', () => {
    expect(generatorObjects(objects)).toEqual([]);
    expect(
      objects.filter((o) =>
        (o.metadata.annotations?.['fastnext.io/creates-secrets'] ?? '').split(',').includes('db-credentials'),
      ),
    ).toEqual([]);
    // Declared as supplied from outside, so the reference check accepts the missing Secret.
    const sts = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'postgres')!;
    expect(sts.metadata.annotations?.['fastnext.io/external-secrets']?.split(',')).toContain('db-credentials');
    expect(runPolicy(objects, { production: true }).findings.map((f) => `${f.check}: ${f.message}`)).toEqual([]);
  });

  test('the deploy order still holds: nothing waits for a generator, a fresh create blocks nothing', () => {
    const env = objects.filter((o) => o.kind !== 'Namespace');
    const deps = deployDependencies(env);
    expect([...deps.values()].flat().filter((d) => /credentials-generator/.test(d))).toEqual([]);
    expect(() => dependencyLayers(deps)).not.toThrow();
    // The external Secret is outside the model (as with kubectl): the kubelet holds the pods until it exists.
    expect(simulateCreate(fromObjects(objects, deps), AWAIT_OPTIONS).blocked).toEqual([]);
  });

  test('what the servers run is unchanged: every ConfigMap and every literal env value (the twin runs these)', () => {
    // The key names live only in secretKeyRefs and Secret volume items, which the kubelet resolves; the
    // launcher and the twin fill the same env var names and *_FILE paths (the API's file stays 'password').
    const defaults = synthObjects(loadEnvironment('prod'));
    const configMaps = (os: readonly KubeObject[]) =>
      os.filter((o) => o.kind === 'ConfigMap').map((o) => JSON.stringify(o));
    expect(configMaps(objects)).toEqual(configMaps(defaults));
    const literalEnv = (os: readonly KubeObject[]) =>
      os
        .filter((o) => ['StatefulSet', 'Deployment', 'CronJob'].includes(o.kind))
        .map((o) => JSON.stringify(o.spec).match(/\{"name":"[A-Z_]+","value":"[^"]*"\}/g));
    expect(literalEnv(objects)).toEqual(literalEnv(defaults));
    expect(literalEnv(objects).flat().length).toBeGreaterThan(20);
  });

  test('Pulumi: a partly supplied external Secret is refused (no generator would fill the rest)', () => {
    const { platform } = buildPlatform(
      loadEnvironment('prod', {
        postgres: {
          credentials: { ...EXTERNAL, exporterSecretName: 'db-monitoring', migrationSecretName: 'db-migration' },
        },
      }),
    );
    const supply = (secrets: Record<string, string>) => () =>
      suppliedSecretSpecs(platform, secrets as unknown as Parameters<typeof suppliedSecretSpecs>[1]);
    expect(supply({ postgresPassword: 'a' })).toThrow(
      "Secret 'db-credentials' is partly supplied by stack config; also set fastnext:postgresReplicationPassword, " +
        'fastnext:postgresSuperuserPassword (pulumi config set --secret), or unset its keys and let the Secret come ' +
        "from postgres.credentials' source (generate: false)",
    );
    expect(
      supply({ postgresPassword: 'a', postgresReplicationPassword: 'b', postgresSuperuserPassword: 'c' })(),
    ).toEqual([
      {
        name: 'db-credentials',
        component: 'postgres',
        stringData: { 'app-password': 'a', replication: 'b', 'postgres-password': 'c' },
      },
    ]);
  });

  test('Pulumi stack secrets, when set, go to the mapped Secret and keys', () => {
    const t = secretTargets(loadEnvironment('prod', { postgres: { credentials: EXTERNAL } }));
    expect([t.postgresPassword, t.postgresReplicationPassword, t.postgresSuperuserPassword]).toEqual([
      { secretName: 'db-credentials', key: 'app-password', component: 'postgres', secret: true },
      { secretName: 'db-credentials', key: 'replication', component: 'postgres', secret: true },
      { secretName: 'db-credentials', key: 'postgres-password', component: 'postgres', secret: true },
    ]);
  });
});

describe('postgres.credentials: mapped keys, still generated', () => {
  test('the generators write the mapped keys into the named Secrets', () => {
    const objects = synthObjects(
      loadEnvironment('prod', {
        postgres: {
          credentials: { secretName: 'pg-auth', exporterSecretName: 'pg-monitoring', keys: { password: 'app' } },
        },
      }),
    );
    const env = (name: string) => generatedKeys(objects, name);
    expect(env('pg-auth')).toBe('app replication-password superuser-password');
    expect(env('pg-monitoring')).toBe('password');
    expect(refsTo(objects, ['pg-auth', 'pg-monitoring'])).toContain(
      'StatefulSet/postgres volume pg-monitoring/password as exporter-password',
    );
    expect(refsTo(objects, ['pg-auth'])).toContain('Deployment/pgbouncer PGBOUNCER_PASSWORD=pg-auth/app');
  });
});

describe('postgres.credentials: bad input is refused with field, value and fix', () => {
  test('generate: false without a Secret name (schema)', () => {
    expect(errorFor({ postgres: { credentials: { generate: false } } })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.credentials.generate: false leaves PostgreSQL without credentials: name the Secret your controller ' +
        'writes (ExternalSecret target, SealedSecret, SOPS) in postgres.credentials.secretName, or let it be generated (generate: true)',
    );
  });

  test('a key mapping naming an empty key (schema)', () => {
    expect(errorFor({ postgres: { credentials: { keys: { replicationPassword: '' } } } })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.credentials.keys.replicationPassword: "" names an empty key: write the key your Secret holds the replication role\'s password under, ' +
        "or remove it for the default 'replication-password'",
    );
  });

  test('a key that is not a Secret key, a bad Secret name, two credentials on one key, an unknown field (schema)', () => {
    expect(errorFor({ postgres: { credentials: { keys: { password: 'app password' } } } })).toContain(
      "postgres.credentials.keys.password: \"app password\" is not a Secret key: letters, digits, '-', '_' and '.' only",
    );
    expect(errorFor({ postgres: { credentials: { secretName: 'DB_Creds' } } })).toContain(
      'postgres.credentials.secretName: "DB_Creds" must be a Secret name (DNS-1123 label)',
    );
    expect(errorFor({ postgres: { credentials: { keys: { password: 'pw', superuserPassword: 'pw' } } } })).toContain(
      'postgres.credentials.keys.superuserPassword: "pw" is also the key of password in Secret \'postgres-credentials\': each credential needs its own key',
    );
    expect(errorFor({ postgres: { credentials: { keys: { appPassword: 'x' } } } })).toContain(
      'postgres.credentials.keys',
    );
    // Generated: the exporter's Secret must be its own.
    expect(errorFor({ postgres: { credentials: { secretName: 'db', exporterSecretName: 'db' } } })).toContain(
      'postgres.credentials.exporterSecretName: "db" must differ',
    );
    // Not generated: one Secret may hold every key (the exporter's key then differs from the app's).
    expect(() =>
      loadEnvironment('prod', { postgres: { credentials: { ...EXTERNAL, exporterSecretName: 'db-credentials' } } }),
    ).not.toThrow();
    expect(
      errorFor({
        postgres: { credentials: { secretName: 'db', generate: false, keys: { exporterPassword: 'password' } } },
      }),
    ).toContain('postgres.credentials.keys.exporterPassword: "password" is also the key of password in Secret \'db\'');
  });

  test('the constructor refuses the same with field, value and fix', () => {
    const cluster = (credentials: object) => () =>
      new PatroniCluster(new Chart(Testing.app(), 'c', { namespace: 'ns' }), 'pg', {
        clients: [{ podSelector: { matchLabels: { app: 'x' } } }],
        credentials,
      });
    expect(cluster({ generate: false })).toThrow(
      "'credentials.generate' (false) leaves PostgreSQL without credentials: name the Secret",
    );
    expect(cluster({ keys: { password: '' } })).toThrow(
      "'credentials.keys.password' () names an empty key: write the key your Secret holds the application role's password under, or remove it for the default 'password'",
    );
    expect(cluster({ secretName: 'x', generate: false, keys: { superuserPassword: 'password' } })).toThrow(
      "'credentials.keys.superuserPassword' (password) is also the key of password in Secret 'x'",
    );
    expect(cluster(EXTERNAL)).not.toThrow();
  });

  test("the migration role's key: empty, shared with another credential, or its Secret shared while generated (schema)", () => {
    expect(errorFor({ postgres: { credentials: { keys: { migrationPassword: '' } } } })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.credentials.keys.migrationPassword: "" names an empty key: write the key your Secret holds the migration role\'s password under, ' +
        "or remove it for the default 'migration-password'",
    );
    expect(
      errorFor({
        postgres: { credentials: { ...EXTERNAL, keys: { ...EXTERNAL.keys, migrationPassword: 'app-password' } } },
      }),
    ).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.credentials.keys.migrationPassword: "app-password" is also the key of password in Secret \'db-credentials\': ' +
        'each credential needs its own key (a shared password would give one role the rights of the other)',
    );
    expect(errorFor({ postgres: { credentials: { migrationSecretName: 'postgres-exporter-credentials' } } })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.credentials.migrationSecretName: "postgres-exporter-credentials" must differ from the credentials\' ' +
        'secretName and exporterSecretName while the platform generates them (each Secret is generated with its own keys): ' +
        'name another Secret, or set generate: false when one external Secret holds every key',
    );
    expect(errorFor({ postgres: { credentials: { migrationSecretName: 'Migrator' } } })).toContain(
      'postgres.credentials.migrationSecretName: "Migrator" must be a Secret name (DNS-1123 label)',
    );
  });

  test('the constructor refuses a bad migration key with field, value and fix', () => {
    const cluster = (credentials: object) => () =>
      new PatroniCluster(new Chart(Testing.app(), 'c', { namespace: 'ns' }), 'pg', {
        clients: [{ podSelector: { matchLabels: { app: 'x' } } }],
        credentials,
      });
    expect(cluster({ keys: { migrationPassword: '' } })).toThrow(
      "'credentials.keys.migrationPassword' () names an empty key: write the key your Secret holds the migration role's password under, or remove it for the default 'migration-password'",
    );
    expect(
      cluster({
        secretName: 'x',
        generate: false,
        keys: { exporterPassword: 'exporter', migrationPassword: 'superuser-password' },
      }),
    ).toThrow(
      "'credentials.keys.migrationPassword' (superuser-password) is also the key of superuserPassword in Secret 'x'",
    );
  });

  test('the predicate: no problem for the default or a full mapping', () => {
    expect(credentialsProblems(undefined, 'postgres-credentials', 'postgres-exporter-credentials')).toEqual([]);
    expect(credentialsProblems(EXTERNAL, 'postgres-credentials', 'postgres-exporter-credentials')).toEqual([]);
  });
});

describe('Pulumi: every PostgreSQL credential and the rotation keys from stack config', () => {
  const platformOf = (credentials: object) =>
    buildPlatform(loadEnvironment('prod', { postgres: { credentials } })).platform;
  const supply =
    (platform: ReturnType<typeof platformOf>, secrets: Record<string, string>, activeLogin?: string) => () =>
      suppliedSecretSpecs(platform, secrets as unknown as Parameters<typeof suppliedSecretSpecs>[1], activeLogin);
  const app = { postgresPassword: 'a', postgresReplicationPassword: 'r', postgresSuperuserPassword: 's' };

  test('the exporter and migration passwords fill their own generated Secrets, whole', () => {
    const t = secretTargets(loadEnvironment('prod'));
    expect([t.postgresExporterPassword, t.postgresMigrationPassword]).toEqual([
      { secretName: 'postgres-exporter-credentials', key: 'password', component: 'postgres', secret: true },
      { secretName: 'postgres-migration-credentials', key: 'migration-password', component: 'postgres', secret: true },
    ]);
    const platform = platformOf({});
    expect(supply(platform, { postgresExporterPassword: 'e', postgresMigrationPassword: 'm' })()).toEqual([
      { name: 'postgres-exporter-credentials', component: 'postgres', stringData: { password: 'e' } },
      { name: 'postgres-migration-credentials', component: 'postgres', stringData: { 'migration-password': 'm' } },
    ]);
  });

  test('with alternateLogin: the second password and the login in use go into the credentials Secret', () => {
    const platform = platformOf({ alternateLogin: true });
    expect(supply(platform, { ...app, postgresAlternatePassword: 'b' }, 'fastnext_b')()).toEqual([
      {
        name: 'postgres-credentials',
        component: 'postgres',
        stringData: {
          password: 'a',
          'replication-password': 'r',
          'superuser-password': 's',
          'alternate-password': 'b',
          'active-login': 'fastnext_b',
        },
      },
    ]);
    // The generator makes the second password too: supplying the Secret without it would leave it unset.
    expect(supply(platform, app)).toThrow(
      "Secret 'postgres-credentials' is partly supplied by stack config; also set fastnext:postgresAlternatePassword",
    );
    // Only the flip, the rest generated in-cluster: the Secret would be half ours, half the generator's.
    expect(supply(platform, {}, 'fastnext')).toThrow(
      "Secret 'postgres-credentials' is partly supplied by stack config; also set fastnext:postgresPassword",
    );
  });

  test('bad input: a login that is not one of the two, or rotation keys without alternateLogin', () => {
    expect(supply(platformOf({ alternateLogin: true }), { ...app, postgresAlternatePassword: 'b' }, 'admin')).toThrow(
      'fastnext:postgresActiveLogin ("admin") must be one of the application\'s logins: fastnext or fastnext_b',
    );
    expect(supply(platformOf({}), { ...app, postgresAlternatePassword: 'b' }, 'fastnext_b')).toThrow(
      'fastnext:postgresAlternatePassword, fastnext:postgresActiveLogin set, but postgres.credentials.alternateLogin is ' +
        'off: nothing reads it; turn alternateLogin on in the environment (docs/postgres-security.md#rotation), or unset it',
    );
  });
});
