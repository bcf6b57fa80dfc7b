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
import type { KubeObject } from '../stacks/synth';
import {
  identity,
  kubeRegistrations,
  LOAD_BALANCER_IP,
  type ProgramRun,
  type Registration,
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
