/**
 * The API image, run with the api Deployment's pod spec from the synthesized dev
 * objects (not a copy of it): uid/gid and fsGroup, read-only root, no capabilities,
 * no-new-privileges, the env, the emptyDir and secret mounts, the probes. The pod talks
 * to the twin's real PostgreSQL primary + replicas and Redis Cluster. The image is
 * `npm run image:build`'s (built here when missing; podman's layer cache makes that
 * quick when nothing changed).
 */
import { SERVICE_ENV, SERVICE_PATHS } from '../service/src/contract';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { buildAll } from '../tools/runtime/images/build';
import { imageExists, podman } from '../tools/runtime/images/podman';
import { type DeploymentLike, type PodWiring, podProbeTarget } from '../tools/runtime/twin/api-pods';
import {
  type ContainerPod,
  podmanRunArgs,
  probeUntilSuccess,
  quantityBytes,
  resolveEnv,
  startContainerPod,
} from '../tools/runtime/twin/container-pods';
import { startTwin, type Twin } from '../tools/runtime/twin/twin';

jest.setTimeout(600000);

const objects = synthObjects(loadEnvironment('dev')) as unknown as { kind: string; metadata: { name: string } }[];
const deployment = objects.find(
  (o) => o.kind === 'Deployment' && o.metadata.name === 'api',
) as unknown as DeploymentLike;
const spec = deployment.spec.template.spec;
const main = spec.containers.find((c) => c.name === 'api')!;
const IMAGE = main.image!;

describe('podman run arguments from the pod spec', () => {
  const run = {
    name: 'p',
    image: IMAGE,
    env: { A: '1' },
    secretDirs: { 'postgres-credentials': '/h/pg', 'redis-password': '/h/redis', 'management-token': '/h/token' },
    hosts: [['redis-0.redis-headless', '127.0.0.5']] as const,
    remove: true,
  };

  test('carry the security context, mounts, limits and command of the Deployment', () => {
    const args = podmanRunArgs(spec, main, run).join(' ');
    expect(args).toContain('--user 10001:10001 --group-add 10001');
    expect(args).toContain('--read-only --read-only-tmpfs=false');
    expect(args).toContain('--cap-drop=all');
    expect(args).toContain('--security-opt=no-new-privileges');
    expect(args).toContain(`--tmpfs /tmp:rw,size=${64 * 2 ** 20},mode=1777,U `);
    expect(args).toContain('--volume /h/pg:/var/run/secrets/fastnext/postgres:ro');
    expect(args).toContain(`--memory ${256 * 2 ** 20} --cpus 0.5`);
    expect(args).toContain('--add-host redis-0.redis-headless:127.0.0.5');
    expect(args.endsWith(`--entrypoint node ${IMAGE} dist/server.js`)).toBe(true);
  });

  test('fails when runAsNonRoot has no user', () => {
    expect(() => podmanRunArgs({ ...spec, securityContext: { runAsNonRoot: true } }, { name: 'x' }, run)).toThrow(
      "container 'x': runAsNonRoot needs a numeric non-zero runAsUser (got undefined)",
    );
  });

  test('fails when a volume is none of the kinds it can mount', () => {
    const c = { name: 'x', volumeMounts: [{ name: 'cfg', mountPath: '/etc/x' }] };
    expect(() => podmanRunArgs({ ...spec, volumes: [{ name: 'cfg' }] }, c, run)).toThrow(
      "container 'x': volume 'cfg' is not an emptyDir, secret, configMap or volume claim; not supported here",
    );
  });

  test('resolves env as the kubelet does: values, fieldRefs, secretKeyRefs, then $(VAR) references', () => {
    const c = {
      name: 'm',
      env: [
        { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'ADDR', value: '$(IP):5432 $(LATER) $$(IP)' },
        { name: 'PW', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
        { name: 'LATER', value: 'x' },
      ],
    };
    expect(resolveEnv(c, { 'status.podIP': '127.0.0.9' }, { s: { k: 'secret' } })).toEqual({
      IP: '127.0.0.9',
      ADDR: '127.0.0.9:5432 $(LATER) $(IP)',
      PW: 'secret',
      LATER: 'x',
    });
    expect(() => resolveEnv(c, {}, {})).toThrow(
      `container 'm' env IP: no value for {"fieldRef":{"fieldPath":"status.podIP"}}`,
    );
  });

  test('reads Kubernetes quantities', () => {
    expect([quantityBytes('64Mi'), quantityBytes('1Gi'), quantityBytes('500M')]).toEqual([2 ** 26, 2 ** 30, 5e8]);
    expect(() => quantityBytes('lots')).toThrow("quantity 'lots' is not understood (e.g. 64Mi)");
  });
});

describe('the API image under the Deployment pod spec', () => {
  let twin: Twin;
  let pod: ContainerPod;
  let wiring: PodWiring;
  const report: string[] = [];

  beforeAll(async () => {
    if (!(await imageExists(IMAGE))) {
      const r = await buildAll({ only: ['api'], log: () => undefined });
      report.push(`built ${IMAGE} in ${(r.totalMs / 1000).toFixed(0)} s (bases: ${r.mode})`);
    }
    // The twin's one API pod runs as a container too: its container mode is what this proves.
    twin = await startTwin({ env: 'dev', pods: 'container', apiReplicas: 1 });
    const ready = twin.apiPods[0].events.find((e) => e.type === 'ready');
    report.push(`twin (1 container pod) ready in ${twin.readyMs} ms; its pod Ready after ${ready?.at} ms`);
    wiring = twin.wiring;
    // Kept after exit, so that its filesystem changes can be read.
    pod = await startContainerPod(deployment, wiring, 'api-image-test', { keep: true });
    report.push(`pod: init containers ${pod.initMs} ms, startup probe + readiness ${pod.startMs - pod.initMs} ms`);
  });

  afterAll(async () => {
    await pod?.remove();
    await twin?.stop();
    console.log(report.join('\n'));
  });

  test('migrate ran as the init container: the schema and the partitions exist', async () => {
    const c = await twin.postgres.connect();
    try {
      const { rows } = await c.query<{ t: string | null }>(
        "SELECT to_regclass('users')::text AS t UNION ALL SELECT to_regclass('projects')::text UNION ALL SELECT to_regclass('activity_logs')::text",
      );
      expect(rows.map((r) => r.t)).toEqual(['users', 'projects', 'activity_logs']);
      const parts = await c.query(
        "SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'activity_logs'::regclass",
      );
      expect((parts.rows[0] as { n: number }).n).toBeGreaterThanOrEqual(4);
    } finally {
      await c.end();
    }
  });

  test('startup, liveness and readiness probes pass as the kubelet runs them', async () => {
    // The twin's kubelet probes its container pod: Ready by its probes, never restarted.
    expect(twin.apiPods.map((k) => [k.ready, k.restarts])).toEqual([[true, 0]]);
    expect(twin.endpoints.inRotation()).toEqual([twin.apiPods[0].name]);
    for (const probe of [main.startupProbe!, main.livenessProbe!, main.readinessProbe!]) {
      await probeUntilSuccess('probe', probe, podProbeTarget(deployment, pod), pod.log, pod.alive);
    }
    const deep = await fetch(`http://${pod.http.host}:${pod.http.port}${SERVICE_PATHS.deep}`);
    expect(((await deep.json()) as { status: string }).status).toBe('up');
  });

  test('serves writes (PostgreSQL), cached reads (Redis) and metrics from the container', async () => {
    const base = `http://${pod.http.host}:${pod.http.port}/api/v1`;
    const created = await fetch(`${base}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'image@test.example', username: 'image-test' }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    for (let i = 0; i < 2; i++) expect((await fetch(`${base}/users/${id}`)).status).toBe(200);
    const metrics = await (await fetch(`http://${pod.metrics.host}:${pod.metrics.port}/metrics`)).text();
    expect(metrics).toMatch(/^fastnext_cache_hits_total \d+/m);
  });

  test('runs as 10001:10001 with fsGroup, no capabilities and no-new-privileges', async () => {
    const status = await podman(['exec', pod.container, 'cat', '/proc/1/status']);
    expect(status).toMatch(/^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
    expect(status).toMatch(/^Gid:\s+10001\s+10001\s+10001\s+10001$/m);
    expect(status).toMatch(/^Groups:\s+10001\s*$/m);
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      expect(status).toMatch(new RegExp(`^${set}:\\s+0{16}$`, 'm'));
    }
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m);
  });

  test('the root filesystem is read-only; /tmp (emptyDir) and the secrets are mounted', async () => {
    await expect(podman(['exec', pod.container, 'touch', '/app/service/x'])).rejects.toThrow(/Read-only file system/);
    await podman(['exec', pod.container, 'touch', '/tmp/x']);
    const token = await podman(['exec', pod.container, 'cat', '/var/run/secrets/fastnext/management/token']);
    expect(token.trim().length).toBeGreaterThanOrEqual(16);
    expect(pod.env[SERVICE_ENV.managementTokenFile]).toBe('/var/run/secrets/fastnext/management/token');
  });

  test('SIGTERM drains within terminationGracePeriodSeconds; nothing was written outside the mounts', async () => {
    const grace = (spec.terminationGracePeriodSeconds ?? 30) * 1000;
    const readiness = `http://${pod.http.host}:${pod.http.port}${SERVICE_PATHS.readiness}`;
    const seen = new Set<number>();
    let polling = true;
    const poll = (async () => {
      while (polling) {
        try {
          seen.add((await fetch(readiness, { signal: AbortSignal.timeout(1000) })).status);
        } catch {
          // Closed at the end of the drain.
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const { exitCode, ms } = await pod.terminate();
    polling = false;
    await poll;
    report.push(`terminate (preStop + SIGTERM drain): exit ${exitCode} in ${ms} ms (grace ${grace} ms)`);
    expect(exitCode).toBe(0);
    expect(ms).toBeLessThan(grace);
    // Served while preStop ran, then failed readiness during the drain.
    expect([...seen].sort()).toEqual([200, 503]);
    // What the runtime itself creates is not a write: the mount points of the volumes (and their
    // parents; /var/run is a link to /run in Debian) and /etc, which holds the hosts, hostname
    // and resolv.conf files podman bind-mounts as the kubelet does.
    const runtimeMade = new Set(['/etc']);
    for (const m of main.volumeMounts ?? []) {
      const parts = m.mountPath.replace(/^\/var\/run\//, '/run/').split('/');
      for (let i = 2; i <= parts.length; i++) runtimeMade.add(parts.slice(0, i).join('/'));
    }
    const diff = await pod.diff();
    expect(diff.length).toBeGreaterThan(0); // the mount points: proof that the diff sees the container
    expect(diff.filter((d) => !runtimeMade.has(d.split(' ')[1]))).toEqual([]);
    expect(diff.filter((d) => d.startsWith('changed ')).map((d) => d.split(' ')[1])).toEqual(['/etc']);
  });
});
