/**
 * The Pulumi program's stack config: secrets supplied with `pulumi config set
 * --secret`, the documented overrides, and the failures (same messages as the
 * synth path), under Pulumi's runtime mocks (see pulumi-harness.ts).
 */
import type { EnvironmentConfig } from '../stacks/config';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { type KubeObject, synthObjects } from '../stacks/synth';
import {
  containsPlaintext,
  identity,
  isSecretWrapped,
  kubeRegistrations,
  programError,
  type ProgramRun,
  runProgram,
  stackFileConfig,
  synthError,
  typeToken,
} from './pulumi-harness';

describe('secrets from stack config', () => {
  const values = {
    'fastnext:postgresPassword': 'pg-app-s3cret-value',
    'fastnext:postgresReplicationPassword': 'pg-repl-s3cret-value',
    'fastnext:postgresSuperuserPassword': 'pg-super-s3cret-value',
    'fastnext:redisAppPassword': 'redis-app-s3cret-value',
    'fastnext:redisExporterPassword': 'redis-exporter-s3cret-value',
    'fastnext:redisAdminPassword': 'redis-admin-s3cret-value',
    'fastnext:redisReplicationPassword': 'redis-replication-s3cret-value',
    // Mid-rotation keys (docs/redis-acl.md#rotation): a second password beside the user's.
    'fastnext:redisAppPasswordNext': 'redis-app-next-s3cret-value',
    'fastnext:redisAdminPasswordPrevious': 'redis-admin-old-s3cret-value',
    'fastnext:grafanaAdminPassword': 'grafana-s3cret-value',
    'fastnext:managementToken': 'mgmt-s3cret-token',
  };
  let run: ProgramRun;
  let config: EnvironmentConfig;
  beforeAll(async () => {
    // GIVEN prod's stack file plus every secret, set as `pulumi config set --secret` would.
    run = await runProgram('prod', { ...stackFileConfig('prod'), ...values }, Object.keys(values));
    config = run.model.loadEnvironment('prod');
  });

  /** The Secrets made from stack config (the synthesized ones, e.g. alertmanager-config, left out). */
  const secretRegistrations = () => {
    const synthesized = new Set(
      run.model
        .synthObjects(config)
        .filter((o) => o.kind === 'Secret')
        .map((o) => o.metadata.name),
    );
    return kubeRegistrations(run).filter(
      (r) => r.type === 'kubernetes:core/v1:Secret' && !synthesized.has((r.inputs as KubeObject).metadata.name),
    );
  };

  test('become Kubernetes Secrets with the names and keys the constructs read, on top of the synthesized objects', () => {
    const byName = Object.fromEntries(secretRegistrations().map((r) => [r.name, (r.inputs as KubeObject).stringData]));
    expect(byName).toEqual({
      [`${config.namespace}/${config.postgres.credentialsSecret}`]: {
        password: values['fastnext:postgresPassword'],
        'replication-password': values['fastnext:postgresReplicationPassword'],
        'superuser-password': values['fastnext:postgresSuperuserPassword'],
      },
      [`${config.namespace}/${config.redis.passwordSecret}`]: {
        'app-password': values['fastnext:redisAppPassword'],
        'exporter-password': values['fastnext:redisExporterPassword'],
        'admin-password': values['fastnext:redisAdminPassword'],
        'replication-password': values['fastnext:redisReplicationPassword'],
        'app-password-next': values['fastnext:redisAppPasswordNext'],
        'admin-password-previous': values['fastnext:redisAdminPasswordPrevious'],
      },
      [`${config.namespace}/${config.monitoring.grafana.adminSecret}`]: {
        'admin-user': 'admin',
        'admin-password': values['fastnext:grafanaAdminPassword'],
      },
      [`${config.namespace}/${config.api.managementTokenSecret}`]: { token: values['fastnext:managementToken'] },
    });
    const synthesized = run.model.synthObjects(config).map((o) => identity(typeToken(o), o));
    const registered = kubeRegistrations(run).map((r) => identity(r.type, r.inputs as KubeObject));
    expect(registered.filter((id) => !synthesized.includes(id)).sort()).toEqual(
      secretRegistrations()
        .map((r) => identity(r.type, r.inputs as KubeObject))
        .sort(),
    );
    expect(registered).toHaveLength(synthesized.length + 4);
  });

  test('are registered as Pulumi secrets, protected, after the Namespace', () => {
    const namespace = kubeRegistrations(run).find((r) => r.type === 'kubernetes:core/v1:Namespace')!;
    for (const r of secretRegistrations()) {
      expect(isSecretWrapped((r.wire as Record<string, unknown>).stringData)).toBe(true);
      expect(r.additionalSecretOutputs).toEqual(expect.arrayContaining(['data', 'stringData']));
      expect(r.protect).toBe(true);
      expect(r.dependencies).toContain(namespace.urn);
    }
  });

  test('every pod controller waits for them, so nothing starts or generates with another password', () => {
    const secretUrns = secretRegistrations().map((r) => r.urn);
    const controllers = kubeRegistrations(run).filter((r) => /:(Deployment|StatefulSet|Job|CronJob)$/.test(r.type));
    expect(controllers.length).toBeGreaterThan(0);
    for (const r of controllers) expect(r.dependencies).toEqual(expect.arrayContaining(secretUrns));
  });

  test('never appear in plaintext in any registered input, component output or stack output', () => {
    for (const value of Object.values(values)) {
      for (const r of run.registrations) {
        expect({ resource: `${r.type} ${r.name}`, plaintext: containsPlaintext(r.wire, value) }).toEqual({
          resource: `${r.type} ${r.name}`,
          plaintext: false,
        });
      }
      expect(containsPlaintext(run.componentOutputs, value)).toBe(false);
      expect(JSON.stringify(run.outputs)).not.toContain(value);
    }
  });

  test('a kubeconfig from stack config reaches the provider as a secret', async () => {
    const kubeconfig = 'apiVersion: v1\nkind: Config\nusers: [{name: ops, user: {token: kube-t0ken-value}}]\n';
    const withKubeconfig = await runProgram('staging', {
      ...stackFileConfig('staging'),
      'fastnext:kubeconfig': kubeconfig,
    });
    const provider = withKubeconfig.registrations.find((r) => r.type === 'pulumi:providers:kubernetes')!;
    expect(provider.inputs.kubeconfig).toBe(kubeconfig);
    expect(isSecretWrapped((provider.wire as Record<string, unknown>).kubeconfig)).toBe(true);
    for (const r of withKubeconfig.registrations) expect(containsPlaintext(r.wire, 'kube-t0ken-value')).toBe(false);
  });

  test('fails when a generated Secret is only partly supplied (the generator would never fill the rest)', async () => {
    const error = await programError('prod', { 'fastnext:postgresPassword': 'only-one' });
    expect(error.message).toBe(
      "Secret 'postgres-credentials' is partly supplied by stack config; also set " +
        'fastnext:postgresReplicationPassword, fastnext:postgresSuperuserPassword (pulumi config set --secret), ' +
        'or unset its keys so the whole Secret is generated in-cluster',
    );
  });
});

describe('overrides from stack config', () => {
  test('fails when API min replicas (30) exceed max (20), with the same message as the synth path', async () => {
    const expected = synthError(() =>
      synthObjects(loadEnvironment('prod', { api: { autoscaling: { minReplicas: 30, maxReplicas: 20 } } })),
    );
    expect(expected.message).toBe(
      "Invalid config for environment 'prod':\n  - api.autoscaling.minReplicas: 30 must be <= maxReplicas (20)",
    );
    const error = await programError('prod', { 'fastnext:apiMinReplicas': 30, 'fastnext:apiMaxReplicas': 20 });
    expect(error.name).toBe('ConfigError');
    expect(error.message).toBe(expected.message);
  });

  test("fails when apiImageTag is 'latest', with the same message as the synth path", async () => {
    const expected = synthError(() => loadEnvironment('staging', { api: { image: 'ghcr.io/fastnext/api:latest' } }));
    const error = await programError('staging', { 'fastnext:apiImageTag': 'latest' });
    expect(error.message).toBe(expected.message);
    expect(error.message).toContain('api.image: "ghcr.io/fastnext/api:latest" must not use the \'latest\' tag');
  });

  test('fails when a config key is unknown (a typo would otherwise be ignored)', async () => {
    const error = await programError('dev', { 'fastnext:apiMinReplica': 3 });
    expect(error.message).toBe(
      "Unknown Pulumi config key(s) 'fastnext:apiMinReplica' (a typo?); known keys: environment, apiImageTag, " +
        'apiMinReplicas, apiMaxReplicas, hostnames, storageClass, redisMasters, redisScaleFromMasters, monitoringMode, prometheusNamespace, kubeconfig, kubeContext, ' +
        'statefulProtection, ' +
        'postgresPassword, postgresReplicationPassword, postgresSuperuserPassword, postgresExporterPassword, ' +
        'postgresMigrationPassword, postgresAlternatePassword, postgresActiveLogin, redisAppPassword, ' +
        'redisExporterPassword, redisAdminPassword, redisReplicationPassword, ' +
        'redisAppPasswordNext, redisAppPasswordPrevious, redisExporterPasswordNext, redisExporterPasswordPrevious, ' +
        'redisAdminPasswordNext, redisAdminPasswordPrevious, redisReplicationPasswordNext, redisReplicationPasswordPrevious, ' +
        'grafanaAdminPassword, managementToken ' +
        '(see docs/pulumi.md)',
    );
  });

  test('postgresActiveLogin reaches the credentials Secret check: refused while alternateLogin is off', async () => {
    const error = await programError('prod', { 'fastnext:postgresActiveLogin': 'fastnext_b' });
    expect(error.message).toBe(
      'fastnext:postgresActiveLogin set, but postgres.credentials.alternateLogin is off: nothing reads it; ' +
        'turn alternateLogin on in the environment (docs/postgres-security.md#rotation), or unset it',
    );
  });

  test('fails when the selected environment is not registered', async () => {
    const error = await programError('qa', {});
    expect(error.message).toBe(
      `Unknown environment 'qa'; registered: ${environmentNames().join(', ')} (add it in stacks/environments.ts)`,
    );
  });

  test('fastnext:environment picks the environment; overrides give the objects the synth gives for them', async () => {
    // GIVEN a second prod stack ("prod-eu") with its own host names, image tag, scale and storage class.
    const run = await runProgram('prod-eu', {
      'fastnext:environment': 'prod',
      'fastnext:apiImageTag': '1.4.2',
      'fastnext:apiMinReplicas': 4,
      'fastnext:apiMaxReplicas': 12,
      'fastnext:hostnames': ['eu.fastnext.example.com'],
      'fastnext:storageClass': 'premium-rwo',
    });
    // THEN it registers what the synth path produces for prod with the same overrides.
    const expected = run.model.synthObjects(
      run.model.loadEnvironment('prod', {
        storageClass: 'premium-rwo',
        api: { image: 'ghcr.io/fastnext/api:1.4.2', autoscaling: { minReplicas: 4, maxReplicas: 12 } },
        edge: { hostnames: ['eu.fastnext.example.com'] },
      }),
    );
    const registered = kubeRegistrations(run).map((r) => r.inputs as KubeObject);
    const key = (o: KubeObject) => identity(typeToken(o), o);
    expect(registered.sort((a, b) => key(a).localeCompare(key(b)))).toEqual(
      [...expected].sort((a, b) => key(a).localeCompare(key(b))),
    );
    const apiDeployment = run.model.buildPlatform(run.model.loadEnvironment('prod')).platform.api.deploymentName;
    const hpa = registered.find(
      (o) =>
        o.kind === 'HorizontalPodAutoscaler' &&
        (o.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === apiDeployment,
    );
    expect(hpa?.spec).toMatchObject({ minReplicas: 4, maxReplicas: 12 });
    expect(JSON.stringify(registered)).toContain('"image":"ghcr.io/fastnext/api:1.4.2"');
    expect(run.outputs.namespace).toBe('fastnext-prod');
  });

  test("statefulProtection 'none' leaves every object deletable", async () => {
    const run = await runProgram('staging', { 'fastnext:statefulProtection': 'none' });
    const kube = kubeRegistrations(run);
    expect(kube.length).toBeGreaterThan(0);
    expect(kube.filter((r) => r.protect || r.retainOnDelete)).toEqual([]);
  });

  test('fails when statefulProtection is not one of protect, retainOnDelete, none', async () => {
    const error = await programError('staging', { 'fastnext:statefulProtection': 'keep' });
    expect(error.message).toContain("'fastnext:statefulProtection'");
    expect(error.message).toContain('keep');
    expect(error.message).toContain('["protect","retainOnDelete","none"]');
  });
});

describe('runs back to back (the harness loads the SDK and the program modules once per file)', () => {
  test('each run sees only its own registrations, also after a run that failed after registering', async () => {
    // GIVEN a run that registers its component and then fails, then two stacks with different config
    const failed = await programError('prod', { 'fastnext:postgresPassword': 'only-one' });
    expect(failed.message).toContain('partly supplied');
    const staging = await runProgram('staging', { 'fastnext:statefulProtection': 'none' });
    const dev = await runProgram('dev');
    // THEN each registers its own component once and exactly its synthesized objects, once each
    for (const [run, env] of [
      [staging, 'staging'],
      [dev, 'dev'],
    ] as const) {
      const stacks = run.registrations.filter((r) => r.type === 'fastnext:platform:Stack');
      expect(stacks.map((r) => r.inputs)).toEqual([{ environment: env }]);
      const urns = run.registrations.map((r) => r.urn);
      expect(new Set(urns).size).toBe(urns.length);
      expect(urns.filter((u) => !u.startsWith(`urn:pulumi:${env}::fastnext::`))).toEqual([]);
      const expected = run.model.synthObjects(run.model.loadEnvironment(env)).map((o) => identity(typeToken(o), o));
      const registered = kubeRegistrations(run).map((r) => identity(r.type, r.inputs as KubeObject));
      expect(registered.sort()).toEqual(expected.sort());
    }
    // and each its own stack config: staging unprotected here, dev retained on delete (Pulumi.dev.yaml)
    expect(kubeRegistrations(staging).filter((r) => r.protect || r.retainOnDelete)).toEqual([]);
    expect(kubeRegistrations(dev).filter((r) => r.retainOnDelete).length).toBeGreaterThan(0);
  });
});
