/**
 * The Pulumi program per environment, with the config of its Pulumi.<env>.yaml,
 * under Pulumi's runtime mocks (see pulumi-harness.ts). Expected objects always
 * come from `synthObjects`, so these tests keep holding as tiers are added.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

import type { EnvironmentConfig } from '../stacks/config';
import { environmentNames } from '../stacks/environments';
import { formatCriticalPath, type RolloutResult, simulateCreate } from '../tools/manifests/pulumi-await/model';
import { fromRegistrations } from '../tools/manifests/pulumi-await/platform';
import { AWAIT_OPTIONS, nameOf, oldLayering, readable } from './helpers/await';
import {
  awaitsNoEndpoints,
  deployDependencies,
  isPodPrerequisite,
  objectKey,
  selectedWorkloads,
} from '../stacks/deploy-order';
import type { KubeObject } from '../stacks/synth';
import {
  identity,
  kubeRegistrations,
  LOAD_BALANCER_IP,
  patchesOf,
  programError,
  type ProgramRun,
  runProgram,
  stackFileConfig,
  typeToken,
} from './pulumi-harness';

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

  test('registers each object with exactly the dependencies of stacks/deploy-order.ts', () => {
    const kube = kubeRegistrations(run);
    const namespace = kube.find((r) => r.type === 'kubernetes:core/v1:Namespace')!;
    const keyOf = new Map(kube.map((r) => [r.urn, objectKey(r.inputs as KubeObject)]));
    const deps = deployDependencies(expected.filter((o) => o.kind !== 'Namespace'));
    for (const r of kube.filter((x) => x !== namespace)) {
      const key = keyOf.get(r.urn)!;
      const registered = r.dependencies.filter((u) => u !== namespace.urn).map((u) => keyOf.get(u) ?? u);
      expect({ key, dependsOn: registered.sort() }).toEqual({ key, dependsOn: [...(deps.get(key) ?? [])].sort() });
    }
  });

  test('starts pods only after their prerequisites, and no pod controller waits on a Service that awaits endpoints', () => {
    const kube = kubeRegistrations(run);
    const byUrn = new Map(kube.map((r) => [r.urn, r.inputs as KubeObject]));
    const controllers = kube.filter((r) => /:(Deployment|StatefulSet|Job|CronJob)$/.test(r.type));
    expect(controllers.length).toBeGreaterThan(0);
    const prerequisites = kube.filter((r) => isPodPrerequisite(r.inputs as KubeObject)).map((r) => r.urn);
    // ServiceAccounts and NetworkPolicies are among them: a pod never starts unfenced or without its account.
    expect(prerequisites.map((u) => byUrn.get(u)!.kind)).toEqual(
      expect.arrayContaining(['ServiceAccount', 'NetworkPolicy', 'ConfigMap', 'PodDisruptionBudget']),
    );
    for (const r of controllers) {
      expect({ object: r.name, missing: prerequisites.filter((u) => !r.dependencies.includes(u)) }).toEqual({
        object: r.name,
        missing: [],
      });
      const awaited = r.dependencies
        .map((u) => byUrn.get(u))
        .filter((o): o is KubeObject => o?.kind === 'Service' && !awaitsNoEndpoints(o))
        .filter((svc) => selectedWorkloads(svc, expected).some((w) => w.object.metadata.name === r.name.split('/')[1]));
      expect({ object: r.name, waitsOnOwnService: awaited.map((s) => s.metadata.name) }).toEqual({
        object: r.name,
        waitsOnOwnService: [],
      });
    }
  });

  test('gives the StatefulSets that hold data 30 minutes to roll out, and nothing else a custom timeout', () => {
    const timed = kubeRegistrations(run)
      .filter((r) => r.customTimeouts)
      .map((r) => ({ name: r.name, timeouts: r.customTimeouts }));
    const dataSets = expected.filter(
      (o) =>
        o.kind === 'StatefulSet' &&
        ((o.spec as { volumeClaimTemplates?: unknown[] }).volumeClaimTemplates ?? []).length > 0,
    );
    expect(dataSets.map((o) => o.metadata.name)).toEqual(expect.arrayContaining(['postgres', 'redis']));
    expect(timed.sort((a, b) => a.name.localeCompare(b.name))).toEqual(
      dataSets
        .map((o) => ({
          name: `${o.metadata.namespace}/${o.metadata.name}`,
          timeouts: { create: '30m', update: '30m' },
        }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    );
  });

  // The await model (tools/manifests/pulumi-await) over these registrations: does a fresh `pulumi up` complete?
  let rollout: RolloutResult | undefined;
  const awaited = () => (rollout ??= simulateCreate(fromRegistrations(run.registrations), AWAIT_OPTIONS));

  test('every registered resource becomes ready, with no waits-for cycle', () => {
    expect(readable(awaited(), nameOf(run))).toEqual([]);
    expect(awaited().cycles).toEqual([]);
    const kube = run.registrations.filter((r) => r.custom && r.type.startsWith('kubernetes:'));
    for (const r of kube) expect(awaited().events.has(`${r.urn} ready`)).toBe(true);
  });

  test('prints the critical path: the waits of a fresh pulumi up', () => {
    const names = nameOf(run);
    const table = formatCriticalPath(awaited())
      .replace(/urn:\S+::/g, (u) => u)
      .replace(/\| (urn:[^ ]+) \|/g, (_, u) => `| ${names.get(u) ?? u} |`);
    console.log(`${env}: a fresh pulumi up takes ${awaited().steps} await steps; the critical path:\n${table}`);
    // The path starts at the Namespace and ends at the last resource to be ready.
    expect(names.get(awaited().criticalPath[0].id)).toBe(`Namespace/fastnext-${env}`);
    expect(awaited().criticalPath.at(-1)!.step).toBe(awaited().steps);
    // The members, then the roles Job (the migration role), then the API whose migrate init container
    // logs in as that role, are on the longest chain.
    const path = awaited().criticalPath.map((e) => names.get(e.id) ?? '');
    const at = (re: RegExp) => path.findIndex((n) => re.test(n));
    expect(at(/^StatefulSet\/postgres$/)).toBeGreaterThanOrEqual(0);
    expect(at(/^Job\/postgres-roles-[0-9a-f]{8}$/)).toBeGreaterThan(at(/^StatefulSet\/postgres$/));
    expect(at(/^Deployment\/api$/)).toBeGreaterThan(at(/^Job\/postgres-roles-[0-9a-f]{8}$/));
  });

  test('the old layering (controllers wait for every Service) never completes: Services wait for their own pods', () => {
    const objects = run.model.synthObjects(run.model.loadEnvironment(env));
    const old = simulateCreate(oldLayering(objects), AWAIT_OPTIONS);
    const blockedServices = old.blocked.filter((b) => b.id.startsWith('Service/')).map((b) => b.id);
    expect(blockedServices).toEqual(
      expect.arrayContaining(['Service/api', 'Service/postgres-primary', 'Service/grafana']),
    );
    expect(old.blocked.map((b) => b.id)).toEqual(
      expect.arrayContaining(['Deployment/api', 'Deployment/edge', 'StatefulSet/postgres']),
    );
    // Each is a cycle: the controller waits for the Service, the Service for the controller's pods.
    const cycleOf = (id: string) => old.cycles.find((c) => c.some((k) => k.startsWith(`${id} `)));
    expect(cycleOf('Deployment/api')?.map((k) => k.split(' ')[0])).toEqual(expect.arrayContaining(['Service/api']));
  });

  test('grows volumes on the live claims: StatefulSets ignore claim-template changes, each claim is patched to its size', () => {
    const kube = kubeRegistrations(run);
    const byUrn = new Map(kube.map((r) => [r.urn, r]));
    const claimed = expected.filter(
      (o) =>
        o.kind === 'StatefulSet' &&
        ((o.spec as { volumeClaimTemplates?: unknown[] }).volumeClaimTemplates ?? []).length,
    );
    for (const o of claimed) {
      const sts = kube.find(
        (r) => r.type === 'kubernetes:apps/v1:StatefulSet' && r.name === `${o.metadata.namespace}/${o.metadata.name}`,
      )!;
      expect({ name: sts.name, ignoreChanges: sts.ignoreChanges }).toEqual({
        name: sts.name,
        ignoreChanges: ['spec.volumeClaimTemplates'],
      });
    }
    const patches = patchesOf(run);
    const expectedClaims = claimed.flatMap((o) => {
      const spec = o.spec as {
        replicas: number;
        volumeClaimTemplates: { metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }[];
      };
      return spec.volumeClaimTemplates.flatMap((t) =>
        Array.from({ length: spec.replicas }, (_, i) => ({
          claim: `${t.metadata.name}-${o.metadata.name}-${i}`,
          storage: t.spec.resources.requests.storage,
          after: `StatefulSet/${o.metadata.name}`,
        })),
      );
    });
    expect(expectedClaims.map((c) => c.claim)).toEqual(expect.arrayContaining(['data-postgres-0', 'data-redis-5']));
    expect(
      patches
        .map((p) => {
          const inputs = p.inputs as {
            metadata: { name: string; annotations: Record<string, string> };
            spec: { resources: { requests: { storage: string } } };
          };
          expect(p.type).toBe('kubernetes:core/v1:PersistentVolumeClaimPatch');
          expect(p.retainOnDelete).toBe(true);
          expect(inputs.metadata.annotations['pulumi.com/patchForce']).toBe('true');
          const after = p.dependencies
            .map((u) => byUrn.get(u))
            .find((r) => r?.type === 'kubernetes:apps/v1:StatefulSet');
          return {
            claim: inputs.metadata.name,
            storage: inputs.spec.resources.requests.storage,
            after: after && `StatefulSet/${after.name.split('/')[1]}`,
          };
        })
        .sort((a, b) => a.claim.localeCompare(b.claim)),
    ).toEqual(expectedClaims.sort((a, b) => a.claim.localeCompare(b.claim)));
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

describe('operator mode from stack config (fastnext:monitoringMode, fastnext:prometheusNamespace)', () => {
  let run: ProgramRun;
  let expected: KubeObject[];
  beforeAll(async () => {
    run = await runProgram('prod', {
      ...stackFileConfig('prod'),
      'fastnext:monitoringMode': 'operator',
      'fastnext:prometheusNamespace': 'monitoring',
    });
    expected = run.model.synthObjects(
      run.model.loadEnvironment('prod', {
        monitoring: { mode: 'operator', operator: { prometheusNamespace: 'monitoring' } },
      }),
    );
  });

  test('registers exactly the synthesized objects, the prometheus-operator kinds as custom resources', () => {
    const registered = kubeRegistrations(run).map((r) => identity(r.type, r.inputs as KubeObject));
    expect(registered.sort()).toEqual(expected.map((o) => identity(typeToken(o), o)).sort());
    const custom = registered.filter((t) => t.startsWith('kubernetes:monitoring.coreos.com/'));
    expect(custom.map((t) => t.split(' ')[0]).sort()).toEqual([
      ...Array(6).fill('kubernetes:monitoring.coreos.com/v1:PodMonitor'),
      'kubernetes:monitoring.coreos.com/v1:PrometheusRule',
      'kubernetes:monitoring.coreos.com/v1alpha1:AlertmanagerConfig',
    ]);
    expect(
      registered.filter((t) => /StatefulSet .*\/(prometheus|alertmanager)$|Deployment .*\/grafana$/.test(t)),
    ).toEqual([]);
  });

  test('the custom resources wait for the Namespace only, and every resource becomes ready', () => {
    const kube = kubeRegistrations(run);
    const namespace = kube.find((r) => r.type === 'kubernetes:core/v1:Namespace')!;
    for (const r of kube.filter((x) => x.type.startsWith('kubernetes:monitoring.coreos.com/'))) {
      expect([r.name, r.dependencies]).toEqual([r.name, [namespace.urn]]);
    }
    const rollout = simulateCreate(fromRegistrations(run.registrations), AWAIT_OPTIONS);
    expect(readable(rollout, nameOf(run))).toEqual([]);
    expect(rollout.cycles).toEqual([]);
  });

  test('no Grafana or Prometheus URL: the stack runs none', () => {
    expect([run.outputs.grafanaUrl, run.outputs.prometheusUrl]).toEqual([undefined, undefined]);
  });

  test('fails like the synth when the mode is unknown', async () => {
    const e = await programError('prod', { ...stackFileConfig('prod'), 'fastnext:monitoringMode': 'kube-prometheus' });
    expect(e.message).toContain('monitoring.mode: "kube-prometheus" must be one of "bundled", "operator"');
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

describe('Pulumi.yaml', () => {
  test('names the project after the config namespace and runs the TypeScript entry', async () => {
    const { CONFIG_NAMESPACE } = await import('../stacks/pulumi-config');
    const project = parse(readFileSync(join(__dirname, '..', 'Pulumi.yaml'), 'utf8')) as Record<string, unknown>;
    expect(project).toMatchObject({
      name: CONFIG_NAMESPACE,
      runtime: { name: 'nodejs', options: { typescript: true } },
      main: 'stacks/pulumi.ts',
    });
    expect(existsSync(join(__dirname, '..', project.main as string))).toBe(true);
  });
});
