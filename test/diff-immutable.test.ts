/**
 * The diff flags changes Kubernetes refuses in place (tools/manifests/diff/immutable.ts):
 * each rule on a small fixture, the mutable neighbours left alone, every output
 * format, the exit status, and prod's 100Gi -> 200Gi PostgreSQL disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironment } from '../stacks/environments';
import { writeEnvironments } from '../stacks/manifests';
import { type KubeObject, synthObjects } from '../stacks/synth';
import { EXIT_IMMUTABLE, main as diff } from '../tools/manifests/diff/cli';
import { formatDiff } from '../tools/manifests/diff/format';
import { diffEnvironment } from '../tools/manifests/diff/object-diff';

const object = (kind: string, body: Record<string, unknown>, apiVersion = 'v1'): KubeObject => ({
  apiVersion,
  kind,
  metadata: { name: 'x', namespace: 'ns' },
  ...body,
});
const statefulSet = (spec: Record<string, unknown>) =>
  object(
    'StatefulSet',
    {
      spec: {
        serviceName: 'x-headless',
        replicas: 1,
        podManagementPolicy: 'OrderedReady',
        selector: { matchLabels: { app: 'x' } },
        template: { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'i:1' }] } },
        volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { resources: { requests: { storage: '10Gi' } } } }],
        ...spec,
      },
    },
    'apps/v1',
  );
/** The flagged paths and messages of one object changed from `a` to `b`. */
const flagged = (a: KubeObject, b: KubeObject) =>
  (diffEnvironment([a], [b]).changed[0]?.immutable ?? []).map((f) => `${f.path}: ${f.message}`);

describe('immutable fields', () => {
  const claim = (size: string) => [
    { metadata: { name: 'data' }, spec: { resources: { requests: { storage: size } } } },
  ];

  test.each([
    [
      'a StatefulSet selector',
      statefulSet({}),
      statefulSet({ selector: { matchLabels: { app: 'y' } } }),
      'spec.selector.matchLabels.app: immutable: kubectl apply will fail; Pulumi will replace StatefulSet/x',
    ],
    [
      'a StatefulSet serviceName',
      statefulSet({}),
      statefulSet({ serviceName: 'other' }),
      'spec.serviceName: immutable: kubectl apply will fail; Pulumi will replace StatefulSet/x',
    ],
    [
      'a StatefulSet podManagementPolicy',
      statefulSet({}),
      statefulSet({ podManagementPolicy: 'Parallel' }),
      'spec.podManagementPolicy: immutable: kubectl apply will fail; Pulumi will replace StatefulSet/x',
    ],
    [
      'a grown claim template',
      statefulSet({}),
      statefulSet({ volumeClaimTemplates: claim('20Gi') }),
      'spec.volumeClaimTemplates[name=data].spec.resources.requests.storage: immutable: kubectl apply will fail; Pulumi ignores it on StatefulSet/x and patches the live claims',
    ],
    [
      'a shrunk claim template',
      statefulSet({}),
      statefulSet({ volumeClaimTemplates: claim('5Gi') }),
      'spec.volumeClaimTemplates[name=data].spec.resources.requests.storage: immutable: a volume cannot shrink (10Gi → 5Gi); kubectl apply and Pulumi will both fail',
    ],
    [
      'a Deployment selector',
      object('Deployment', { spec: { selector: { matchLabels: { app: 'x' } } } }, 'apps/v1'),
      object('Deployment', { spec: { selector: { matchLabels: { app: 'y' } } } }, 'apps/v1'),
      'spec.selector.matchLabels.app: immutable: kubectl apply will fail; Pulumi will replace Deployment/x',
    ],
    [
      "a Job's pod template",
      object('Job', { spec: { template: { spec: { containers: [{ name: 'c', image: 'i:1' }] } } } }, 'batch/v1'),
      object('Job', { spec: { template: { spec: { containers: [{ name: 'c', image: 'i:2' }] } } } }, 'batch/v1'),
      'spec.template.spec.containers[name=c].image: immutable: kubectl apply will fail; Pulumi will replace Job/x',
    ],
    [
      "a Service's clusterIP",
      object('Service', { spec: { clusterIP: 'None' } }),
      object('Service', { spec: {} }),
      'spec.clusterIP: immutable: kubectl apply will fail; Pulumi will replace Service/x',
    ],
    [
      "a PVC's storageClassName",
      object('PersistentVolumeClaim', { spec: { storageClassName: 'a' } }),
      object('PersistentVolumeClaim', { spec: { storageClassName: 'b' } }),
      'spec.storageClassName: immutable: kubectl apply will fail; Pulumi will replace PersistentVolumeClaim/x',
    ],
    [
      "a PVC's accessModes",
      object('PersistentVolumeClaim', { spec: { accessModes: ['ReadWriteOnce'] } }),
      object('PersistentVolumeClaim', { spec: { accessModes: ['ReadWriteMany'] } }),
      'spec.accessModes: immutable: kubectl apply will fail; Pulumi will replace PersistentVolumeClaim/x',
    ],
    [
      "a RoleBinding's roleRef",
      object('RoleBinding', { roleRef: { kind: 'Role', name: 'a' } }, 'rbac.authorization.k8s.io/v1'),
      object('RoleBinding', { roleRef: { kind: 'Role', name: 'b' } }, 'rbac.authorization.k8s.io/v1'),
      'roleRef.name: immutable: kubectl apply will fail; Pulumi will replace RoleBinding/x',
    ],
  ])('flags %s', (_what, a, b, expected) => {
    expect(flagged(a, b)).toEqual([expected]);
  });

  test.each([
    ['replicas', statefulSet({ replicas: 3 })],
    ['the pod template', statefulSet({ template: { metadata: { labels: { app: 'x' } }, spec: { containers: [] } } })],
    ['the update strategy', statefulSet({ updateStrategy: { type: 'OnDelete' } })],
    ['minReadySeconds', statefulSet({ minReadySeconds: 5 })],
  ])('leaves a StatefulSet change of %s alone (Kubernetes allows it)', (_what, b) => {
    expect(flagged(statefulSet({}), b)).toEqual([]);
  });

  test("leaves a Job's backoffLimit and a Deployment's template alone", () => {
    const job = (n: number) => object('Job', { spec: { backoffLimit: n } }, 'batch/v1');
    expect(flagged(job(1), job(2))).toEqual([]);
    const dep = (image: string) =>
      object('Deployment', { spec: { template: { spec: { containers: [{ name: 'c', image }] } } } }, 'apps/v1');
    expect(flagged(dep('i:1'), dep('i:2'))).toEqual([]);
  });

  test('every format carries the flag and what to do instead', () => {
    const d = diffEnvironment([statefulSet({})], [statefulSet({ serviceName: 'other' })]);
    const results = [{ name: 'prod', diff: d }];
    const text = formatDiff('text', results);
    expect(text).toContain('prod: 1 changed, 0 added, 0 removed, 1 immutable');
    expect(text).toContain('! immutable: kubectl apply will fail; Pulumi will replace StatefulSet/x');
    expect(text).toContain('! instead: `kubectl delete statefulset <name> --cascade=orphan`');
    expect(formatDiff('markdown', results)).toContain('!         immutable: kubectl apply will fail');
    const json = JSON.parse(formatDiff('json', results));
    expect(json.environments[0].summary.immutable).toBe(1);
    expect(json.environments[0].changed[0].immutable[0]).toMatchObject({ path: 'spec.serviceName' });
  });
});

describe("prod's PostgreSQL disk from 100Gi to 200Gi", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fastnext-immutable-'));
    const prod = (size?: string) =>
      synthObjects(loadEnvironment('prod', size ? { postgres: { storage: { size } } } : {}));
    writeEnvironments(join(dir, 'base'), new Map([['prod', prod()]]));
    writeEnvironments(join(dir, 'head'), new Map([['prod', prod('200Gi')]]));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('is a flagged, explained change, and the diff exits with its own status', async () => {
    let out = '';
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out += String(chunk);
      return true;
    });
    let code: number;
    try {
      code = await diff(['--base-dir', join(dir, 'base'), '--head-dir', join(dir, 'head'), '--env', 'prod']);
    } finally {
      write.mockRestore();
    }
    expect(code).toBe(EXIT_IMMUTABLE);
    // The WAL sizes follow the volume: a new reconfigure Job applies them (by reload) and replaces the old one.
    expect(out).toMatch(/^prod: \d+ changed, 1 added, 1 removed, \d+ immutable/);
    expect(out).toMatch(
      /\n {2}\+ Job fastnext-prod\/postgres-reconfigure-[0-9a-f]{8}\n {2}- Job fastnext-prod\/postgres-reconfigure-/,
    );
    const storage = 'spec.volumeClaimTemplates[name=data].spec.resources.requests.storage: "100Gi" → "200Gi"';
    expect(out.split('\n').filter((l) => l.includes(storage)).length).toBeGreaterThanOrEqual(1);
    expect(out).toContain('! immutable: kubectl apply will fail; Pulumi ignores it on StatefulSet/postgres');
    expect(out).toContain('! instead: grow the live claims: `pulumi up` patches them');
  });
});

describe('a changed PostgreSQL parameter', () => {
  const prod = (parameters: Record<string, string | number>) =>
    synthObjects(loadEnvironment('prod', { postgres: { parameters } }));

  test('says, per parameter, whether a reload applies it or it needs the restart-and-switchover path', () => {
    const d = diffEnvironment(prod({}), prod({ work_mem: '8MB', max_locks_per_transaction: 128 }));
    const files = d.changed.find((c) => c.object.kind === 'ConfigMap' && c.object.name === 'postgres-files');
    expect(files?.notes?.map((n) => n.message)).toEqual([
      'parameter max_locks_per_transaction: (default) → 128: context postmaster: needs a restart; the reconfigure Job restarts the replicas one at a time, switches over to one, then restarts the old leader (a write pause of a switchover)',
      expect.stringMatching(
        /^parameter work_mem: "\d+kB" → "8MB": context user: applied by a reload on every member, no restart$/,
      ),
    ]);
    // Not immutable: a new reconfigure Job applies it, nothing is replaced.
    expect(files?.immutable).toBeUndefined();
    const results = [{ name: 'prod', diff: d }];
    expect(formatDiff('text', results)).toMatch(
      /\n {10}> parameter work_mem: "\d+kB" → "8MB": context user: applied by a reload/,
    );
    expect(formatDiff('markdown', results)).toContain('>         parameter max_locks_per_transaction: (default) → 128');
    expect(JSON.parse(formatDiff('json', results)).environments[0].changed).toContainEqual(
      expect.objectContaining({
        notes: expect.arrayContaining([expect.objectContaining({ path: 'data["patroni.yml"]' })]),
      }),
    );
  });

  test('an unchanged configuration gets no notes, and other ConfigMaps none', () => {
    const d = diffEnvironment(prod({ work_mem: '8MB' }), prod({ work_mem: '8MB' }));
    expect(d.changed).toEqual([]);
    const cm = (data: Record<string, string>) => object('ConfigMap', { data });
    expect(
      diffEnvironment([cm({ 'patroni.yml': 'a: 1' })], [cm({ 'patroni.yml': 'a: 2' })]).changed[0].notes,
    ).toBeUndefined();
  });
});
