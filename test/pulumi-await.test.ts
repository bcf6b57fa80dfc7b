/**
 * The await model (tools/manifests/pulumi-await): updates over what the Pulumi program
 * registers under the mock harness (a changed nginx.conf, a new Redis
 * topology, a bumped API image, the same program twice) complete without
 * refused changes; and the model's own rules on small fixtures. The fresh
 * `pulumi up` of every environment is checked in pulumi.test.ts, on the run
 * it already makes.
 */
import { dependencyLayers, deployDependencies, objectKey } from '../stacks/deploy-order';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects, type KubeObject } from '../stacks/synth';
import { simulateCreate, simulateUpdate, SKIP_AWAIT_ANNOTATION } from '../tools/manifests/pulumi-await/model';
import { fromObjects, fromRegistrations } from '../tools/manifests/pulumi-await/platform';
import { AWAIT_OPTIONS, nameOf } from './helpers/await';
import { type ProgramRun, runProgram, stackFileConfig } from './pulumi-harness';

const options = AWAIT_OPTIONS;

describe('updates: pulumi up on a running environment', () => {
  const env = 'prod';
  let base: ProgramRun;
  beforeAll(async () => {
    base = await runProgram(env);
  });

  const plan = async (config: Record<string, unknown>) => {
    const next = await runProgram(env, { ...stackFileConfig(env), ...config });
    const names = nameOf(next);
    const p = simulateUpdate(fromRegistrations(base.registrations), fromRegistrations(next.registrations), options);
    return {
      ...p,
      next,
      names,
      label: (ids: string[]) => ids.map((id) => names.get(id) ?? nameOf(base).get(id) ?? id).sort(),
    };
  };

  test('the same program twice: nothing changes and nothing waits', async () => {
    const p = await plan({});
    expect(p.created).toEqual([]);
    expect(p.updated).toEqual([]);
    expect(p.deleted).toEqual([]);
    expect(p.refused).toEqual([]);
    expect(p.rollout.steps).toBe(0);
  });

  test('a changed nginx.conf (new host names): the ConfigMap, then the edge rolls; nothing else', async () => {
    const p = await plan({ 'fastnext:hostnames': ['eu.fastnext.example.com'] });
    expect(p.label(p.updated)).toEqual(['ConfigMap/edge-nginx-conf', 'Deployment/edge']);
    expect(p.refused).toEqual([]);
    expect(p.rollout.blocked).toEqual([]);
    const edge = [...p.names].find(([, k]) => k === 'Deployment/edge')![0];
    const config = [...p.names].find(([, k]) => k === 'ConfigMap/edge-nginx-conf')![0];
    expect(p.rollout.events.get(`${edge} ready`)!.step).toBeGreaterThan(p.rollout.events.get(`${config} ready`)!.step);
  });

  test('a bumped API image: the API Deployment and its CronJob roll, and nothing waits on a Job', async () => {
    const p = await plan({ 'fastnext:apiImageTag': '9.9.9' });
    expect(p.label(p.updated)).toEqual(['CronJob/api-partition-maintenance', 'Deployment/api']);
    expect(p.created).toEqual([]);
    expect(p.refused).toEqual([]);
    expect(p.rollout.blocked).toEqual([]);
  });

  test('a changed Redis topology: a new create Job runs beside the grown StatefulSet; the old Job is deleted', () => {
    const objectsOf = (masters: number) => synthObjects(loadEnvironment(env, { redis: { masters } }));
    const model = (objects: KubeObject[]) =>
      fromObjects(objects, deployDependencies(objects.filter((o) => o.kind !== 'Namespace')));
    const before = model(objectsOf(3));
    const after = model(objectsOf(4));
    const p = simulateUpdate(before, after, options);
    expect(p.refused).toEqual([]);
    expect(p.created).toEqual([expect.stringMatching(/^Job\/redis-cluster-create-[0-9a-f]{8}$/)]);
    expect(p.deleted).toEqual([expect.stringMatching(/^Job\/redis-cluster-create-[0-9a-f]{8}$/)]);
    // The StatefulSet grows; the API and its CronJob get the new seed list.
    expect(p.updated).toEqual(expect.arrayContaining(['StatefulSet/redis', 'Deployment/api']));
    expect(p.rollout.blocked).toEqual([]);
    // The StatefulSet's rollout needs the new Job (readiness needs cluster_state:ok), so the Job must not wait for it.
    expect(p.rollout.events.get('StatefulSet/redis ready')!.step).toBeGreaterThan(
      p.rollout.events.get(`${p.created[0]} pods ready`)!.step,
    );
  });

  /** The program run with fastnext:redisMasters 4, kept by the scale-out test for the scale-in test. */
  let fourMasters: ProgramRun | undefined;

  test('a scale-out from Pulumi config (fastnext:redisMasters): the new Job and the grown StatefulSet wait for neither', async () => {
    const p = await plan({ 'fastnext:redisMasters': 4 });
    const job = p.created.find((id) => p.names.get(id)!.startsWith('Job/redis-cluster-create-'))!;
    const sts = [...p.names].find(([, k]) => k === 'StatefulSet/redis')![0];
    expect(p.label(p.updated)).toEqual(expect.arrayContaining(['StatefulSet/redis']));
    expect(p.refused).toEqual([]);
    expect(p.rollout.blocked).toEqual([]);
    // Neither waits for the other: the StatefulSet's new pods are ready only once the Job joined them.
    fourMasters = p.next;
    const deps = (urn: string) => p.next.registrations.find((r) => r.urn === urn)!.dependencies;
    expect(deps(sts)).not.toContain(job);
    expect(deps(job)).not.toContain(sts);
    expect(p.rollout.events.get(`${sts} ready`)!.step).toBeGreaterThan(p.rollout.events.get(`${job} pods ready`)!.step);
  });

  test('a scale-in (fastnext:redisScaleFromMasters): the StatefulSet shrinks only after the new Job completed', async () => {
    // GIVEN a running 4-master cluster (the scale-out test's program run, when it ran)
    const four = fourMasters ?? (await runProgram(env, { ...stackFileConfig(env), 'fastnext:redisMasters': 4 }));
    // WHEN the stack asks for 3 masters, naming the 4 it has
    const next = await runProgram(env, {
      ...stackFileConfig(env),
      'fastnext:redisMasters': 3,
      'fastnext:redisScaleFromMasters': 4,
    });
    const names = nameOf(next);
    const urnOf = (key: string) => [...names].find(([, k]) => k === key)![0];
    const job = [...names].find(([, k]) => k.startsWith('Job/redis-cluster-create-'))![0];
    const sts = urnOf('StatefulSet/redis');
    // THEN the StatefulSet is registered with dependsOn the Job, and the Job does not wait for it
    expect(next.registrations.find((r) => r.urn === sts)!.dependencies).toContain(job);
    expect(next.registrations.find((r) => r.urn === job)!.dependencies).not.toContain(sts);
    const p = simulateUpdate(fromRegistrations(four.registrations), fromRegistrations(next.registrations), options);
    expect(p.refused).toEqual([]);
    expect(p.rollout.blocked).toEqual([]);
    expect(p.rollout.events.get(`${sts} created`)!.step).toBeGreaterThan(p.rollout.events.get(`${job} ready`)!.step);
  });

  test('fails when a Job changes under the same name: Jobs are immutable, so every Job name carries its spec hash', () => {
    const objects = synthObjects(loadEnvironment(env));
    const jobs = objects.filter((o) => o.kind === 'Job');
    expect(jobs.length).toBeGreaterThan(0);
    for (const job of jobs) expect(job.metadata.name).toMatch(/-[0-9a-f]{8}$/);
    // GIVEN a generator Job whose image changes but whose name is kept
    const before = fromObjects(objects, new Map());
    const after = before.map((r) =>
      r.object === jobs[0]
        ? { ...r, object: { ...r.object, spec: { ...(r.object.spec as object), backoffLimit: 99 } } }
        : r,
    );
    // THEN the model refuses it, as the API server would
    expect(simulateUpdate(before, after, options).refused).toEqual([objectKey(jobs[0])]);
    // and the construct instead names a changed Job anew
    const changed = synthObjects(loadEnvironment(env, { redis: { replicasPerMaster: 2 } })).filter(
      (o) => o.kind === 'Job',
    );
    expect(changed.map((j) => j.metadata.name)).not.toEqual(jobs.map((j) => j.metadata.name));
  });
});

describe('the await model', () => {
  const ns: KubeObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } };
  const labels = { 'app.kubernetes.io/name': 'web' };
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'ns' },
    spec: {
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: 'c' }] } },
    },
  };
  const service = (name: string, spec: Record<string, unknown>, annotations?: Record<string, string>): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'ns', ...(annotations ? { annotations } : {}) },
    spec: { selector: labels, ports: [{ port: 80 }], ...spec },
  });
  const model = (objects: KubeObject[], deps: Record<string, string[]>) =>
    fromObjects([ns, ...objects], new Map(Object.entries(deps)));

  test('a cluster-IP Service is ready once the pods it selects are; a headless one at once', () => {
    const r = simulateCreate(
      model([deployment, service('web', {}), service('web-headless', { clusterIP: 'None' })], {
        'Service/web': ['Deployment/web'],
      }),
    );
    expect(r.blocked).toEqual([]);
    // Step 1 creates the Namespace; the headless Service is created and done in step 2.
    expect(r.events.get('Service/web-headless ready')!.step).toBe(2);
    expect(r.events.get('Service/web ready')!.step).toBeGreaterThan(r.events.get('Deployment/web ready')!.step);
  });

  test('fails when a workload depends on the Service that selects it: a waits-for cycle', () => {
    const r = simulateCreate(model([deployment, service('web', {})], { 'Deployment/web': ['Service/web'] }));
    expect(r.blocked.map((b) => b.id).sort()).toEqual(['Deployment/web', 'Service/web']);
    expect(r.cycles).toHaveLength(1);
    expect(r.cycles[0].map((k) => k.split(' ')[0])).toEqual(expect.arrayContaining(['Deployment/web', 'Service/web']));
  });

  test('skipAwait breaks the wait; a Service selecting nothing never becomes ready', () => {
    const skip = simulateCreate(
      model([deployment, service('web', {}, { [SKIP_AWAIT_ANNOTATION]: 'true' })], {
        'Deployment/web': ['Service/web'],
      }),
    );
    expect(skip.blocked).toEqual([]);
    const orphan = simulateCreate(model([service('nobody', { selector: { x: 'y' } })], {}));
    expect(orphan.blocked).toEqual([
      { id: 'Service/nobody', phase: 'ready', waitingFor: ['(never: nothing can satisfy its await)'] },
    ]);
  });

  test('a LoadBalancer waits for an address: never without a load-balancer controller', () => {
    const objects = model([deployment, service('web', { type: 'LoadBalancer' })], {
      'Service/web': ['Deployment/web'],
    });
    expect(simulateCreate(objects).blocked).toEqual([]);
    expect(simulateCreate(objects, { loadBalancerController: false }).blocked.map((b) => b.id)).toEqual([
      'Service/web',
    ]);
  });

  test('a pod that reads a generated Secret starts only after its generator Job completes', () => {
    const job: KubeObject = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'gen', namespace: 'ns', annotations: { 'fastnext.io/creates-secrets': 'creds' } },
      spec: { template: { metadata: { labels: { j: 'gen' } }, spec: { containers: [{ name: 'g' }] } } },
    };
    const reader = JSON.parse(JSON.stringify(deployment)) as KubeObject;
    (reader.spec as { template: { spec: { volumes: unknown[] } } }).template.spec.volumes = [
      { name: 'creds', secret: { secretName: 'creds' } },
    ];
    const r = simulateCreate(model([reader, job], {}));
    expect(r.blocked).toEqual([]);
    expect(r.events.get('Deployment/web pods started')!.step).toBeGreaterThan(r.events.get('Job/gen ready')!.step);
  });

  test('prod: the TLS generator Job waits for no Service its certificate names; every pod mounting the certificate waits for it', () => {
    const all = synthObjects(loadEnvironment('prod'));
    const env = all.filter((o) => o.kind !== 'Namespace');
    const deps = deployDependencies(env);
    const job = env.find(
      (o) => o.kind === 'Job' && o.metadata.annotations?.['fastnext.io/creates-secrets'] === 'postgres-tls',
    )!;
    expect(job).toBeDefined();
    const jobKey = objectKey(job);
    const credentialsJob = env.find(
      (o) => o.kind === 'Job' && o.metadata.annotations?.['fastnext.io/creates-secrets'] === 'postgres-credentials',
    )!;
    // TLS_DNS_NAMES names postgres-primary, -readonly, the members and pgbouncer: certificate names, not
    // hosts it reaches. It waits for exactly what the password generator (which names no Service) waits for.
    expect(job.spec).toMatchObject({
      template: {
        spec: {
          containers: [
            {
              env: expect.arrayContaining([
                expect.objectContaining({
                  name: 'TLS_DNS_NAMES',
                  value: expect.stringContaining('pgbouncer.fastnext-prod.svc'),
                }),
              ]),
            },
          ],
        },
      },
    });
    expect([...deps.get(jobKey)!].sort()).toEqual([...deps.get(objectKey(credentialsJob))!].sort());
    const waiting = [...deps].filter(([, ds]) => ds.includes(jobKey)).map(([k]) => k.replace(/-[0-9a-f]{8}$/, ''));
    expect(waiting.sort()).toEqual([
      'CronJob/api-partition-maintenance',
      'Deployment/api',
      'Deployment/pgbouncer',
      'Deployment/pgbouncer-readonly',
      'Job/postgres-roles',
      'StatefulSet/postgres',
    ]);
    expect(() => dependencyLayers(deps)).not.toThrow();
    const r = simulateCreate(fromObjects(all, deps), options);
    expect(r.blocked).toEqual([]);
  });

  test.each(['dev', 'prod'])(
    '%s: the roles Job runs once the members and the primary Service are ready; the API and its CronJob after it',
    (env) => {
      const all = synthObjects(loadEnvironment(env));
      const deps = deployDependencies(all);
      const roles = all.find((o) => o.kind === 'Job' && /^postgres-roles-[0-9a-f]{8}$/.test(o.metadata.name))!;
      const rolesKey = objectKey(roles);
      expect(deps.get(rolesKey)).toEqual(expect.arrayContaining(['StatefulSet/postgres', 'Service/postgres-primary']));
      // Pulumi's dependsOn: the migrate init container and the partition CronJob need the migration role.
      expect(deps.get('Deployment/api')).toContain(rolesKey);
      expect(deps.get('CronJob/api-partition-maintenance')).toContain(rolesKey);
      const r = simulateCreate(fromObjects(all, deps), options);
      expect(r.blocked).toEqual([]);
      const step = (e: string) => r.events.get(e)!.step;
      expect(step(`${rolesKey} created`)).toBeGreaterThan(step('StatefulSet/postgres ready'));
      expect(step('Deployment/api pods started')).toBeGreaterThan(step(`${rolesKey} ready`));
      expect(step('CronJob/api-partition-maintenance created')).toBeGreaterThan(step(`${rolesKey} ready`));
    },
  );

  test('layers put every object after its dependencies, and a cycle is named', () => {
    const env = synthObjects(loadEnvironment('dev')).filter((o) => o.kind !== 'Namespace');
    const deps = deployDependencies(env);
    const layers = dependencyLayers(deps);
    const depth = new Map(layers.flatMap((l, i) => l.map((k) => [k, i] as const)));
    for (const [key, ds] of deps) for (const d of ds) expect(depth.get(d)!).toBeLessThan(depth.get(key)!);
    expect(() =>
      dependencyLayers(
        new Map([
          ['A', ['B']],
          ['B', ['A']],
        ]),
      ),
    ).toThrow('deploy order has a cycle: A -> B -> A');
  });
});
