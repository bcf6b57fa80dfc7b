/**
 * The Pulumi program (stacks/pulumi.ts) under Pulumi's runtime mocks: no CLI,
 * no cluster. Each run resets the module registry, sets the mocks with the
 * stack name, sets the stack config (by default the one in Pulumi.<stack>.yaml)
 * and imports the program, recording every RegisterResource request as the
 * engine would receive it (dependencies, protection, secrets).
 *
 * Expected objects always come from `synthObjects`, so these tests keep
 * holding as tiers are added to the platform.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as pulumiSdk from '@pulumi/pulumi';
import type {
  RegisterResourceOutputsRequest,
  RegisterResourceRequest,
  RegisterResourceResponse,
} from '@pulumi/pulumi/proto/resource_pb';
import { parse } from 'yaml';

import type { EnvironmentConfig } from '../stacks/config';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { buildPlatform, type KubeObject, synthObjects } from '../stacks/synth';

/** Pulumi's marker for a secret value in a serialized property. */
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';
const SPECIAL_SIG = '4dabf18193072939515e22adb298388d';
const LOAD_BALANCER_IP = '203.0.113.10';

interface Registration {
  type: string;
  name: string;
  urn: string;
  custom: boolean;
  parent: string;
  provider: string;
  dependencies: string[];
  protect: boolean;
  retainOnDelete: boolean;
  additionalSecretOutputs: string[];
  /** Inputs with secrets unwrapped, as the provider receives them. */
  inputs: Record<string, unknown>;
  /** Inputs as serialized on the wire: secrets still wrapped in their signature. */
  wire: unknown;
}

interface ProgramRun {
  registrations: Registration[];
  /** Resolved stack outputs (the program's exports). */
  outputs: Record<string, unknown>;
  /** Outputs the components registered with registerOutputs, as serialized. */
  componentOutputs: unknown[];
  /**
   * The model as the program loaded it (same module instances): expectations use
   * these, so an edit to a construct in the shared tree mid-run cannot split them.
   */
  model: {
    loadEnvironment: typeof loadEnvironment;
    synthObjects: typeof synthObjects;
    buildPlatform: typeof buildPlatform;
  };
}

type StackConfig = Record<string, unknown>;

const baselineExitListeners = process.listeners('exit');

/** The `config:` block of Pulumi.<stack>.yaml, as the CLI would hand it to the program. */
function stackFileConfig(stack: string): StackConfig {
  const file = parse(readFileSync(join(__dirname, '..', `Pulumi.${stack}.yaml`), 'utf8')) as { config?: StackConfig };
  return file.config ?? {};
}

/** The program's outputs, resolved (the `promiseOf` helper of Pulumi's testing examples). */
function promiseOf<T>(output: pulumiSdk.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/**
 * Runs the program as stack `stack` with `config` (values as in a stack file;
 * keys under `secret` are passed as secret config). Rejects with the program's error.
 */
async function runProgram(
  stack: string,
  config: StackConfig = stackFileConfig(stack),
  secretKeys: string[] = [],
): Promise<ProgramRun> {
  // Each fresh copy of the SDK adds process exit hooks; the previous run is over, so drop its hooks.
  for (const listener of process.listeners('exit')) {
    if (!baselineExitListeners.includes(listener)) process.removeListener('exit', listener);
  }
  jest.resetModules();
  const pulumi: typeof pulumiSdk = await import('@pulumi/pulumi');
  const registrations: Registration[] = [];
  const componentOutputs: unknown[] = [];

  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const state = { ...args.inputs };
        // What a cloud load balancer controller would report once the Service is up.
        if (args.type === 'kubernetes:core/v1:Service' && args.inputs.spec?.type === 'LoadBalancer') {
          state.status = { loadBalancer: { ingress: [{ ip: LOAD_BALANCER_IP }] } };
        }
        return { id: args.custom ? `${args.name}-id` : undefined, state };
      },
      call: (args) => args.inputs,
    },
    'fastnext',
    stack,
  );
  // The mock monitor hands newResource only type, name and inputs; wrap it to see the whole request.
  type Callback<T> = (err: unknown, response?: T) => void;
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource(req: RegisterResourceRequest, cb: Callback<RegisterResourceResponse>): void;
    registerResourceOutputs(req: RegisterResourceOutputsRequest, cb: Callback<unknown>): void;
  };
  const registerResource = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) =>
    registerResource(req, (err, response) => {
      if (response) {
        registrations.push({
          type: req.getType(),
          name: req.getName(),
          urn: response.getUrn(),
          custom: req.getCustom(),
          parent: req.getParent(),
          provider: req.getProvider(),
          dependencies: req.getDependenciesList(),
          protect: req.getProtect() ?? false,
          retainOnDelete: req.getRetainondelete() ?? false,
          additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
          inputs: unwrapSecrets(req.getObject()?.toJavaScript() ?? {}) as Record<string, unknown>,
          wire: req.getObject()?.toJavaScript(),
        });
      }
      callback(err, response);
    });
  const registerResourceOutputs = monitor.registerResourceOutputs.bind(monitor);
  monitor.registerResourceOutputs = (req, callback) => {
    componentOutputs.push(req.getOutputs()?.toJavaScript());
    registerResourceOutputs(req, callback);
  };

  const asStrings = Object.fromEntries(
    Object.entries(config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );
  pulumi.runtime.setAllConfig(asStrings, secretKeys);

  const program = (await import('../stacks/pulumi')) as Record<string, pulumiSdk.Output<unknown>>;
  const outputs: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(program)) {
    outputs[key] = pulumi.Output.isInstance(value) ? await promiseOf(value) : value;
  }
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  const { loadEnvironment: load } = await import('../stacks/environments');
  const { synthObjects: synth, buildPlatform: build } = await import('../stacks/synth');
  return {
    registrations,
    outputs,
    componentOutputs,
    model: { loadEnvironment: load, synthObjects: synth, buildPlatform: build },
  };
}

/** The error a program run fails with. */
async function programError(stack: string, config: StackConfig): Promise<Error> {
  try {
    await runProgram(stack, config);
  } catch (e) {
    return e as Error;
  }
  throw new Error('the program did not fail');
}

function synthError(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('the synth path did not fail');
}

/** `apps/v1` + `StatefulSet` -> `kubernetes:apps/v1:StatefulSet` (core group is `core/v1`). */
function typeToken(o: KubeObject): string {
  const groupVersion = o.apiVersion.includes('/') ? o.apiVersion : `core/${o.apiVersion}`;
  return `kubernetes:${groupVersion}:${o.kind}`;
}

const identity = (type: string, o: { metadata?: { namespace?: string; name?: string } }) =>
  `${type} ${o.metadata?.namespace ?? '(cluster)'}/${o.metadata?.name}`;

const kubeRegistrations = (run: ProgramRun) =>
  run.registrations.filter((r) => r.custom && r.type.startsWith('kubernetes:'));

/** Whether `value` contains `needle` anywhere outside a secret-wrapped subtree. */
function containsPlaintext(value: unknown, needle: string): boolean {
  if (typeof value === 'string') return value.includes(needle);
  if (Array.isArray(value)) return value.some((v) => containsPlaintext(v, needle));
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record[SPECIAL_SIG] === SECRET_SIG) return false;
    return Object.values(record).some((v) => containsPlaintext(v, needle));
  }
  return false;
}

/** `value` with every secret wrapper replaced by the value it wraps (what the provider receives). */
function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record[SPECIAL_SIG] === SECRET_SIG) return unwrapSecrets(record.value);
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

const isSecretWrapped = (value: unknown) =>
  !!value && typeof value === 'object' && (value as Record<string, unknown>)[SPECIAL_SIG] === SECRET_SIG;

describe.each(environmentNames())('stack %s (config from Pulumi.%s.yaml)', (env) => {
  let run: ProgramRun;
  let config: EnvironmentConfig;
  let expected: KubeObject[];
  beforeAll(async () => {
    run = await runProgram(env);
    config = run.model.loadEnvironment(env);
    expected = run.model.synthObjects(config);
  });

  test('registers exactly the synthesized objects (type token, namespace, name)', () => {
    const registered = kubeRegistrations(run).map((r) => identity(r.type, r.inputs as KubeObject));
    const synthesized = expected.map((o) => identity(typeToken(o), o));
    expect(registered.sort()).toEqual(synthesized.sort());
    expect(registered).toHaveLength(expected.length);
  });

  test('registers every object with the synthesized spec, unchanged', () => {
    const byIdentity = new Map(kubeRegistrations(run).map((r) => [identity(r.type, r.inputs as KubeObject), r.inputs]));
    for (const o of expected) {
      expect(byIdentity.get(identity(typeToken(o), o))).toEqual(o);
    }
  });

  test('registers the Namespace first and makes it a dependency of every other object', () => {
    const kube = kubeRegistrations(run);
    const namespace = kube.find((r) => r.type === 'kubernetes:core/v1:Namespace');
    expect(namespace?.name).toBe(config.namespace);
    expect(kube[0]).toBe(namespace);
    const others = kube.filter((r) => r !== namespace);
    expect(others.length).toBeGreaterThan(0);
    for (const r of others) {
      expect({ object: r.name, dependsOnNamespace: r.dependencies.includes(namespace!.urn) }).toEqual({
        object: r.name,
        dependsOnNamespace: true,
      });
    }
  });

  test('starts pods only after every other object: pod controllers depend on all of them', () => {
    const kube = kubeRegistrations(run);
    const isController = (r: Registration) => /:(Deployment|StatefulSet|Job|CronJob)$/.test(r.type);
    const controllers = kube.filter(isController);
    const others = kube.filter((r) => !isController(r)).map((r) => r.urn);
    expect(controllers.length).toBeGreaterThan(0);
    for (const r of controllers) {
      expect({ object: r.name, missing: others.filter((urn) => !r.dependencies.includes(urn)) }).toEqual({
        object: r.name,
        missing: [],
      });
    }
    // ...and nothing else waits on a pod controller.
    const controllerUrns = new Set(controllers.map((r) => r.urn));
    for (const r of kube) expect(r.dependencies.filter((urn) => controllerUrns.has(urn))).toEqual([]);
  });

  test('deploys through one server-side-apply provider, every resource under fastnext:platform:Stack', () => {
    const providers = run.registrations.filter((r) => r.type === 'pulumi:providers:kubernetes');
    expect(providers).toHaveLength(1);
    expect(providers[0].inputs).toMatchObject({ enableServerSideApply: 'true', context: `fastnext-${env}` });
    const stack = run.registrations.filter((r) => r.type === 'fastnext:platform:Stack');
    expect(stack).toHaveLength(1);
    // The component records only the environment name: no config, no secrets.
    expect(stack[0].inputs).toEqual({ environment: env });
    const byUrn = new Map(run.registrations.map((r) => [r.urn, r]));
    for (const r of kubeRegistrations(run)) {
      expect(r.provider.startsWith(`${providers[0].urn}::`)).toBe(true);
      let ancestor = byUrn.get(r.parent);
      while (ancestor && ancestor.type !== 'fastnext:platform:Stack') ancestor = byUrn.get(ancestor.parent);
      expect(ancestor).toBe(stack[0]);
    }
  });

  test('shields stateful objects as the stack file says, and only those', () => {
    const protection = stackFileConfig(env)['fastnext:statefulProtection'];
    const stateful = ['Namespace', 'StatefulSet', 'PersistentVolumeClaim', 'Secret'];
    const kube = kubeRegistrations(run);
    expect(
      kube.some((r) => r.type === 'kubernetes:apps/v1:StatefulSet' || r.type === 'kubernetes:core/v1:Namespace'),
    ).toBe(true);
    for (const r of kube) {
      const isStateful = stateful.includes(r.type.split(':')[2]);
      expect({ object: `${r.type} ${r.name}`, protect: r.protect, retainOnDelete: r.retainOnDelete }).toEqual({
        object: `${r.type} ${r.name}`,
        protect: isStateful && protection === 'protect',
        retainOnDelete: isStateful && protection === 'retainOnDelete',
      });
    }
  });

  test('outputs resolve to the construct fields', () => {
    const { platform } = run.model.buildPlatform(config);
    const url = (service: { serviceName: string; port: number } | undefined) =>
      service && `http://${service.serviceName}.${config.namespace}.svc.cluster.local:${service.port}`;
    expect(run.outputs).toEqual({
      namespace: `fastnext-${env}`,
      edgeAddress: config.edge.serviceType === 'LoadBalancer' ? LOAD_BALANCER_IP : platform.edge.host,
      grafanaUrl: url(platform.monitoring?.grafana),
      prometheusUrl: url(platform.monitoring?.prometheus),
      postgresPrimaryHost: platform.postgres.primaryHost,
      postgresReadOnlyHost: platform.postgres.readOnlyHost,
      redisSeedHosts: platform.redis.seedHosts,
    });
    expect(run.outputs.postgresPrimaryHost).toContain(`.${config.namespace}.svc`);
    expect(run.outputs.postgresReadOnlyHost).not.toBe(run.outputs.postgresPrimaryHost);
    expect(run.outputs.redisSeedHosts).toHaveLength(config.redis.masters * (1 + config.redis.replicasPerMaster));
    expect(run.outputs.grafanaUrl).toBe(`http://grafana.fastnext-${env}.svc.cluster.local:3000`);
  });
});

describe('secrets from stack config', () => {
  const values = {
    'fastnext:postgresPassword': 'pg-app-s3cret-value',
    'fastnext:postgresReplicationPassword': 'pg-repl-s3cret-value',
    'fastnext:postgresSuperuserPassword': 'pg-super-s3cret-value',
    'fastnext:redisPassword': 'redis-s3cret-value',
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

  const secretRegistrations = () => kubeRegistrations(run).filter((r) => r.type === 'kubernetes:core/v1:Secret');

  test('become Kubernetes Secrets with the names and keys the constructs read, on top of the synthesized objects', () => {
    const byName = Object.fromEntries(secretRegistrations().map((r) => [r.name, (r.inputs as KubeObject).stringData]));
    expect(byName).toEqual({
      [`${config.namespace}/${config.postgres.credentialsSecret}`]: {
        password: values['fastnext:postgresPassword'],
        'replication-password': values['fastnext:postgresReplicationPassword'],
        'superuser-password': values['fastnext:postgresSuperuserPassword'],
      },
      [`${config.namespace}/${config.redis.passwordSecret}`]: { password: values['fastnext:redisPassword'] },
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
        'apiMinReplicas, apiMaxReplicas, hostnames, storageClass, kubeconfig, kubeContext, statefulProtection, ' +
        'postgresPassword, postgresReplicationPassword, postgresSuperuserPassword, redisPassword, ' +
        'grafanaAdminPassword, managementToken ' +
        '(see docs/pulumi.md)',
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
});

describe('docs/pulumi.md', () => {
  test('documents every config key the program reads', async () => {
    const { CONFIG_KEYS } = await import('../stacks/pulumi-config');
    const docs = readFileSync(join(__dirname, '..', 'docs', 'pulumi.md'), 'utf8');
    const documented = [...docs.matchAll(/^\| `(\w+)` +\| (?:string|number|list|secret)/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(CONFIG_KEYS).sort());
  });
});
