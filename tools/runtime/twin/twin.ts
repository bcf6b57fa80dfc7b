/**
 * The local twin: the whole topology of one environment on loopback, from its
 * synthesized objects. Patroni-managed PostgreSQL members (etcd as the DCS), the
 * PgBouncer pools and the Redis Cluster come from the data-tier launcher (shipped
 * ConfigMap files); ServiceProxy stand-ins play the primary, read-only and PgBouncer
 * Services (tools/launcher/service-proxy.ts). The API runs as many pods as the HPA
 * minimum with the Deployment's env (processes, or containers of the built image:
 * pod-runner.ts), and nginx runs the shipped nginx.conf in front of them. The twin
 * plays the kubelet (every API, edge and data-tier pod's probes from the manifest,
 * restarts with back-off: kubelet.ts, data-probes.ts) and the endpoints controller:
 * nginx's upstream list is the set of Ready API pods (controllers.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SERVICE_ENV, SERVICE_PATHS } from '../../../service/src/contract';
import type { EnvironmentConfig } from '../../../stacks/config';
import { loadEnvironment } from '../../../stacks/environments';
import { synthObjects } from '../../../stacks/synth';
import { redisNodeCount } from '../../../constructs/redis/files';
import { type PatroniLaunch, startPatroni } from '../launcher/patroni';
import { type PgBouncerLaunch, startPgBouncer } from '../launcher/pgbouncer';
import { type Endpoint, freePort, makeTempDir, removeDir, waitFor } from '../launcher/processes';
import { type RedisClusterLaunch, startRedisCluster } from '../launcher/redis';
import type { KubeObject } from '../../k8s/objects';
import { type RunningNginx, shippedNginxConf, startNginx } from '../nginx-runner';
import type { ApiPod, DeploymentLike, PodWiring } from './api-pods';
import { type PodMode, podRunner } from './pod-runner';
import { type ApiContainer, apiKubeletPod, type EdgeContainer, EndpointsController, probesOf } from './controllers';
import { dataTierPods } from './data-probes';
import { type Container, KubeletPod, probeAttempt } from './kubelet';
import { startMonitoring, type TwinMonitoring } from './monitoring';

export interface TwinOptions {
  /** Environment name (stacks/<env>.ts). */
  readonly env: string;
  /** API processes. @default the api HPA's minReplicas */
  readonly apiReplicas?: number;
  /** Env set on every API pod on top of the Deployment's (bench only, e.g. CACHE_ENABLED=false). @default none */
  readonly apiOverrides?: Readonly<Record<string, string>>;
  /** Progress lines while starting and stopping. @default no output */
  readonly log?: (line: string) => void;
  /** Also run the exporters and Prometheus with the shipped prometheus.yml (tools/runtime/twin/monitoring.ts). @default false */
  readonly monitoring?: boolean;
  /**
   * Overrides of the environment's config (deep-merged, as an environment file's are), e.g. a
   * test's short scrape interval; the twin then runs the objects synthesized from that. @default none
   */
  readonly overrides?: object;
  /** Aborts the start after the current step, stopping what is up. @default never */
  readonly signal?: AbortSignal;
  /**
   * Runs the environment with `api.faultInjection: true` (the service's fault routes, for the
   * drills); the environment config refuses it for a production environment. @default false
   */
  readonly faultInjection?: boolean;
  /** API pods as processes from source, or as containers of the built image (`npm run image:build`). @default 'process' */
  readonly pods?: PodMode;
}

export interface Twin {
  readonly env: string;
  readonly config: EnvironmentConfig;
  readonly objects: readonly KubeObject[];
  /** Base URL of the edge (nginx), e.g. http://127.0.0.1:PORT */
  readonly url: string;
  /** The edge's nginx (the edge pod's current container). */
  readonly edge: RunningNginx;
  readonly postgres: PatroniLaunch;
  /** PgBouncer in front of the primary Service, and the read-only pool (absent without replicas). */
  readonly poolers: readonly PgBouncerLaunch[];
  readonly redis: RedisClusterLaunch;
  /** The current container of each API pod, in pod order (a restarted container keeps its pod's ports). */
  readonly pods: ApiPod[];
  /** The API pods under the twin's kubelet: Ready condition, restarts, events. */
  readonly apiPods: readonly KubeletPod<ApiContainer>[];
  /** The PostgreSQL servers and Redis nodes under the twin's kubelet (readiness and liveness probes). */
  readonly dataPods: readonly KubeletPod<Container>[];
  /** The edge pod under the twin's kubelet. */
  readonly edgePod: KubeletPod<EdgeContainer>;
  /** nginx's upstream list, kept equal to the Ready API pods. */
  readonly endpoints: EndpointsController;
  readonly managementToken: string;
  /** Where the pods find PostgreSQL, Redis and their secrets (to start a pod outside the twin's rotation). */
  readonly wiring: PodWiring;
  /** Exporters and Prometheus, when started with `monitoring: true`. */
  readonly monitoring?: TwinMonitoring;
  /** Milliseconds from start to ready. */
  readonly readyMs: number;
  /** A table of what runs where. */
  table(): Promise<string>;
  /**
   * Starts a new pod (init containers, readiness) and puts it in rotation, unless
   * `rotation` is false (a pod only reached directly, e.g. the bench's cache-off pod).
   */
  startPod(
    name?: string,
    opts?: {
      overrides?: Readonly<Record<string, string>>;
      rotation?: boolean;
      /** Run the service of another checkout (out of rotation; the A/B bench's base revision). */
      serviceRoot?: string;
    },
  ): Promise<ApiPod>;
  /**
   * Deletes API pods as a scale-down does: out of nginx's upstreams first (the endpoints controller
   * drops a terminating pod), then each container stopped: preStop and SIGTERM, SIGKILL once
   * `gracePeriodSeconds` have passed (the pod's terminationGracePeriodSeconds unless given; 0 kills
   * at once, as `kubectl delete --grace-period=0` would). Resolves once they have exited.
   */
  deletePods(pods: readonly ApiPod[], opts?: { gracePeriodSeconds?: number }): Promise<void>;
  /**
   * Rolling update as the Deployment does it (maxUnavailable 0, one surge pod at a time):
   * new pod Ready (its probes) -> in rotation -> old pod deleted: out of rotation and terminated
   * (preStop + SIGTERM drain). Resolves once every old pod has exited.
   */
  rollingRestart(): Promise<{ replaced: string[]; drainMs: number[]; exitCodes: (number | null)[] }>;
  /** Stops everything and removes every directory. Idempotent. */
  stop(): Promise<void>;
}

function find(objects: readonly KubeObject[], kind: string, name: string): KubeObject {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`the synthesized objects have no ${kind} '${name}'`);
  return o;
}

/** The `status` field of the deep health answer ('up' | 'degraded' | 'down'). */
async function deepStatus(base: string): Promise<string> {
  const res = await fetch(base + SERVICE_PATHS.deep, { signal: AbortSignal.timeout(3000) });
  return ((await res.json()) as { status?: string }).status ?? `HTTP ${res.status}`;
}

export async function startTwin(opts: TwinOptions): Promise<Twin> {
  const log = opts.log ?? (() => undefined);
  const t0 = Date.now();
  const step = (what: string) => {
    log(`[twin ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${what}`);
    if (opts.signal?.aborted && !stopping) throw new Error('start-up aborted');
  };
  let stopping = false;
  const overrides = (opts.overrides ?? {}) as { api?: object };
  const config = loadEnvironment(
    opts.env,
    opts.faultInjection ? { ...overrides, api: { ...overrides.api, faultInjection: true } } : overrides,
  );
  const objects = synthObjects(config);
  const deployment = find(objects, 'Deployment', 'api') as unknown as DeploymentLike;
  const hpa = find(objects, 'HorizontalPodAutoscaler', 'api') as { spec?: { minReplicas?: number } };
  const edgeConf = shippedNginxConf(objects);
  const replicas = opts.apiReplicas ?? hpa.spec?.minReplicas ?? 1;
  step(`environment ${config.name}: ${objects.length} objects, ${replicas} API pods (HPA minimum)`);

  let postgres: PatroniLaunch | undefined;
  const poolers: PgBouncerLaunch[] = [];
  let redis: RedisClusterLaunch | undefined;
  let edgePod: KubeletPod<EdgeContainer> | undefined;
  const edgeNow = () => edgePod?.container?.nginx;
  let secretsDir: string | undefined;
  let monitoring: TwinMonitoring | undefined;
  const kpods: KubeletPod<ApiContainer>[] = [];
  let dataPods: KubeletPod<Container>[] = [];
  const dying = new Set<KubeletPod<ApiContainer>>();
  const outside: ApiPod[] = [];
  const endpoints = new EndpointsController(() => kpods, edgeNow, log);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    stopping = true;
    // The launcher unrefs its children: hold the event loop until every server has exited,
    // or a process with nothing else to do would end half-way and leave cleanup to its exit hook.
    const hold = setInterval(() => undefined, 1000);
    try {
      await teardown();
    } finally {
      clearInterval(hold);
    }
  };
  const teardown = async () => {
    step('stopping');
    await monitoring?.stop();
    for (const k of [...kpods, ...dying, ...dataPods]) k.detach();
    edgePod?.detach();
    await edgeNow()?.stop();
    // No traffic reaches the pods once nginx is gone, so the drain would only wait.
    const containers = [...kpods, ...dying].flatMap((k) => (k.container ? [k.container.pod] : []));
    await Promise.all([...containers, ...outside].map((p) => p.kill()));
    await Promise.all(poolers.map((p) => p.stop()));
    await Promise.all([redis?.stop(), postgres?.stop()]);
    if (secretsDir) removeDir(secretsDir);
    step('stopped: every process exited, every directory removed');
  };

  try {
    step(
      `starting Patroni (etcd DCS) with ${1 + config.postgres.replicas} PostgreSQL members and the Redis Cluster ` +
        `(${redisNodeCount(config.redis)} nodes) from ConfigMaps postgres-files, redis-config`,
    );
    [postgres, redis] = await Promise.all([
      startPatroni(objects, {
        members: 1 + config.postgres.replicas,
        database: config.postgres.database,
        user: config.postgres.user,
      }),
      startRedisCluster(objects, {
        masters: config.redis.masters,
        replicasPerMaster: config.redis.replicasPerMaster,
      }),
    ]);
    const at = (eps: readonly Endpoint[]) => eps.map((e) => `${e.host}:${e.port}`).join(' ');
    step(
      `PostgreSQL up in ${postgres.bringUpMs} ms: members ${at(postgres.members)}, ` +
        `primary Service ${at([postgres.primary])}, read-only Service ${at([postgres.readOnly])}`,
    );
    const pg = postgres;
    const poolTargets = [
      { name: 'pgbouncer', server: pg.primary },
      ...(config.postgres.replicas > 0 ? [{ name: 'pgbouncer-readonly', server: pg.readOnly }] : []),
    ];
    const shippedPools = objects.filter((o) => o.kind === 'Deployment' && /^pgbouncer/.test(o.metadata?.name ?? ''));
    poolers.push(
      ...(await Promise.all(
        poolTargets.map((t) => {
          const d = shippedPools.find((o) => o.metadata?.name === t.name)?.spec as { replicas?: number } | undefined;
          return startPgBouncer(objects, {
            server: t.server,
            password: pg.password,
            pods: d?.replicas ?? 2,
            exporter: opts.monitoring,
            configMap: `${t.name}-config`,
            serviceName: t.name,
          });
        }),
      )),
    );
    step(`PgBouncer up: ${poolers.map((p) => `${p.proxy.name} ${at([p.service])} over ${at(p.pods)}`).join('; ')}`);
    step(`Redis Cluster ok in ${redis.bringUpMs} ms: ${at(redis.nodes)}`);
    dataPods = dataTierPods(objects, { postgres, poolers, redis }, log);
    await Promise.all(dataPods.map((k) => k.run()));
    await Promise.all(dataPods.map((k) => k.waitReady(30000)));
    step(`data tier under the kubelet: ${dataPods.length} pods Ready by their StatefulSets' probes`);

    secretsDir = makeTempDir('fastnext-twin-');
    const managementToken = randomBytes(24).toString('base64url');
    const secret = (name: string, value: string) => {
      const p = join(secretsDir!, name);
      writeFileSync(p, `${value}\n`, { mode: 0o600 });
      return p;
    };
    // The manifests' addresses of each Service the API connects to, and the stand-in playing it.
    const svcAddr = (kind: string, name: string, port: number) => {
      const svc = objects.find((o) => o.kind === kind && o.metadata?.name === name);
      if (!svc) throw new Error(`the synthesized objects have no ${kind} '${name}'`);
      return `${name}.${config.namespace}.svc.cluster.local:${port}`;
    };
    const services: Record<string, Endpoint> = {
      [svcAddr('Service', 'postgres-primary', 5432)]: pg.primary,
      ...Object.fromEntries(poolers.map((p) => [svcAddr('Service', p.proxy.name, 6432), p.service])),
    };
    const wiring: PodWiring = {
      services,
      redisNodes: redis.nodes,
      secretFiles: {
        [SERVICE_ENV.postgresPasswordFile]: secret('postgres-password', postgres.password),
        // The migrate init container and the CronJob log in as the migration role (it owns the schema).
        [SERVICE_ENV.postgresMigrationPasswordFile]: secret('postgres-migration-password', postgres.migration.password),
        [SERVICE_ENV.redisPasswordFile]: secret('redis-password', redis.passwords.app),
        [SERVICE_ENV.managementTokenFile]: secret('management-token', managementToken),
      },
      // What the headless Services' DNS would answer: the Redis nodes announce these names. The
      // launcher rewrites the file as nodes come and go (a scale), and the pods re-read it per lookup.
      hostsFile: redis.hostsFile,
      logDir: secretsDir,
      overrides: opts.apiOverrides,
    };

    let seq = 0;
    const runner = podRunner(opts.pods ?? 'process');
    /** A new API pod under the kubelet, on its own ports; resolves once it is Ready. */
    const newPod = async (name = `api-${seq++}`) => {
      const ports = { http: await freePort('0.0.0.0'), metrics: await freePort('0.0.0.0') };
      const k = apiKubeletPod(runner, deployment, wiring, name, ports, {
        onReadyChange: () => void endpoints.sync(),
        log,
      });
      await k.run();
      try {
        await k.waitReady(60000);
      } catch (e) {
        k.detach();
        await k.container?.pod.kill();
        throw new Error(`${(e as Error).message}\n${k.container?.pod.log().slice(-3000) ?? ''}`);
      }
      return k;
    };
    // The first pod runs the migrate init container alone (as the first pod of a rollout
    // does); the rest start in parallel.
    step(
      `starting ${replicas} API pods as ${runner.mode === 'container' ? 'containers' : 'processes'} (init container migrate, then the kubelet's probes)`,
    );
    const first = await newPod();
    kpods.push(first);
    const rest = await Promise.allSettled(Array.from({ length: replicas - 1 }, () => newPod()));
    for (const r of rest) if (r.status === 'fulfilled') kpods.push(r.value);
    const failed = rest.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    step(
      `API pods ready: ${kpods.map((k) => `${k.name} in ${k.events.find((e) => e.type === 'ready')?.at} ms`).join(', ')}`,
    );

    // The edge pod: nginx with the shipped conf, under the kubelet with the edge Deployment's probes.
    const edgeDeployment = find(objects, 'Deployment', 'edge') as unknown as DeploymentLike;
    const nginxSpec = edgeDeployment.spec.template.spec.containers.find((c) => c.name === 'nginx')!;
    let edgePorts: Readonly<Record<'http' | 'https' | 'status', number>> | undefined;
    edgePod = new KubeletPod<EdgeContainer>({
      name: 'edge-0',
      probes: probesOf(nginxSpec),
      terminationGracePeriodSeconds: edgeDeployment.spec.template.spec.terminationGracePeriodSeconds ?? 30,
      attempt: (spec, c) =>
        probeAttempt(spec, {
          port: (p) => {
            const named = nginxSpec.ports?.find((x) => x.name === p || x.containerPort === p)?.name;
            if (named === 'http') return c.nginx.http;
            if (named === 'status') return c.nginx.status;
            throw new Error(`edge probe port ${JSON.stringify(p)} is not a port of the nginx container`);
          },
        }),
      async start() {
        const nginx = await startNginx({ nginxConf: edgeConf, upstreams: endpoints.endpoints(), ports: edgePorts });
        edgePorts = nginx.ports;
        return { nginx, pid: nginx.pid, exited: nginx.exited, kill: () => nginx.stop() };
      },
      log,
    });
    const edge = (await edgePod.run()).nginx;
    endpoints.started();
    await edgePod.waitReady(30000);
    const url = `http://${edge.http.host}:${edge.http.port}`;
    // Ready = every pod reports every component up (primary, replicas, Redis), and nginx answers.
    for (const k of kpods) {
      const p = k.container!.pod;
      await waitFor(
        `${p.name} deep health 'up'`,
        async () => (await deepStatus(`http://${p.http.host}:${p.http.port}`)) === 'up',
        30000,
        p.log,
      );
    }
    await waitFor('deep health through nginx', async () => (await deepStatus(url)) === 'up', 30000);
    step(`nginx up on ${url} (edge pod Ready); deep health of every pod and through nginx: up`);
    const currentPods = () => kpods.map((k) => k.container!.pod);

    if (opts.monitoring) {
      step(
        'starting exporters, Alertmanager (shipped alertmanager.yml, receivers on a loopback sink) and Prometheus ' +
          '(shipped prometheus.yml, pod discovery replaced by static targets)',
      );
      monitoring = await startMonitoring({
        objects,
        namespace: config.namespace,
        postgres,
        poolers,
        redis,
        edge,
        pods: currentPods(),
      });
      step(`Prometheus up on ${monitoring.prometheus} with ${monitoring.targets.length} targets`);
      monitoring.sink.onNotification((n) => {
        const alerts = (n.body.alerts as { status: string; labels: Record<string, string> }[] | undefined) ?? [];
        const what = alerts.length
          ? alerts.map((a) => `${a.status} ${a.labels.alertname}${a.labels.pod ? ` (${a.labels.pod})` : ''}`).join(', ')
          : JSON.stringify(n.body).slice(0, 200);
        log(`[alert] ${n.path.slice(1)}: ${what}`);
      });
    }

    const twin: Twin = {
      env: config.name,
      config,
      objects,
      url,
      postgres,
      poolers,
      redis,
      monitoring,
      get edge() {
        return edgeNow() ?? edge;
      },
      get pods() {
        return currentPods();
      },
      apiPods: kpods,
      dataPods,
      edgePod,
      endpoints,
      managementToken,
      wiring,
      readyMs: Date.now() - t0,
      table: () => renderTable(twin),
      async startPod(name, o = {}) {
        if (o.rotation === false || o.overrides || o.serviceRoot) {
          // Reached directly only (the bench's variants): no kubelet, never in rotation.
          const pod = await runner.start(
            deployment,
            {
              ...wiring,
              overrides: { ...wiring.overrides, ...o.overrides },
              ...(o.serviceRoot ? { serviceRoot: o.serviceRoot } : {}),
            },
            name ?? `api-${seq++}`,
          );
          outside.push(pod);
          return pod;
        }
        const k = await newPod(name);
        kpods.push(k);
        await endpoints.sync();
        return k.container!.pod;
      },
      async deletePods(ps, o = {}) {
        const gone = kpods.filter((k) => k.container && ps.includes(k.container.pod));
        for (const k of gone) {
          kpods.splice(kpods.indexOf(k), 1);
          dying.add(k);
        }
        await endpoints.sync();
        await Promise.all(gone.map((k) => k.terminate(o.gracePeriodSeconds).finally(() => dying.delete(k))));
      },
      async rollingRestart() {
        const old = [...kpods];
        const drains: Promise<{ exitCode: number | null; ms: number }>[] = [];
        for (const o of old) {
          // Surge: the new pod is Ready (so in rotation) before the old one is deleted.
          const fresh = await newPod();
          kpods.splice(kpods.indexOf(o), 1, fresh);
          await endpoints.sync();
          dying.add(o);
          const pod = o.container!.pod;
          const started = Date.now();
          // Deleting the pod: Ready false (the endpoints controller drops it) while preStop runs.
          drains.push(
            o
              .terminate()
              .then(() => ({ exitCode: pod.proc.child.exitCode, ms: Date.now() - started }))
              .finally(() => dying.delete(o)),
          );
        }
        const results = await Promise.all(drains);
        return {
          replaced: old.map((o) => o.name),
          drainMs: results.map((r) => r.ms),
          exitCodes: results.map((r) => r.exitCode),
        };
      },
      stop,
    };
    step(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return twin;
  } catch (e) {
    stopping = true;
    step(`failed: ${(e as Error).message.split('\n')[0]}`);
    await stop();
    throw e;
  }
}

/** Role of each Redis node from CLUSTER NODES ("master" / "replica"). */
async function redisRoles(redis: RedisClusterLaunch): Promise<string[]> {
  try {
    const out = await redis.cli(0, 'cluster', 'nodes');
    return redis.nodes.map((n) => {
      const line = out.split('\n').find((l) => l.includes(`${n.host}:${n.port}@`));
      return line?.includes('master') ? 'master' : line?.includes('slave') ? 'replica' : '?';
    });
  } catch {
    return redis.nodes.map(() => '?');
  }
}

export async function renderTable(t: Twin): Promise<string> {
  const rows: string[][] = [['component', 'role', 'address', 'notes']];
  const ep = (e: Endpoint) => `${e.host}:${e.port}`;
  rows.push(['edge (nginx)', 'http', `${t.url}`, 'shipped nginx.conf, upstreams = API pods in rotation']);
  rows.push(['edge (nginx)', 'status', `http://${ep(t.edge.status)}/stub_status`, 'internal status port']);
  for (const p of t.pods) {
    rows.push([p.name, 'api', `http://${ep(p.http)}`, `metrics http://${ep(p.metrics)}/metrics, pid ${p.pid}`]);
  }
  if (t.monitoring) {
    rows.push(['prometheus', 'monitoring', t.monitoring.prometheus, 'shipped prometheus.yml and rules']);
    t.monitoring.alertmanager.urls.forEach((u, i) =>
      rows.push([`alertmanager-${i}`, 'monitoring', u, 'shipped alertmanager.yml; receivers on the alert sink']),
    );
    rows.push(['alert sink', 'receivers', t.monitoring.sinkUrl, 'webhook and Slack receivers deliver here (logged)']);
    for (const x of t.monitoring.targets.filter((m) => m.app !== 'api' && m.app !== 'alertmanager')) {
      rows.push(
        x.service
          ? [`${x.service}/${x.pod}`, 'metrics', `http://127.0.0.1:${x.port}/metrics`, 'Patroni REST /metrics']
          : [`${x.app}-exporter`, 'exporter', `http://127.0.0.1:${x.port}/metrics`, `for ${x.pod}`],
      );
    }
  }
  rows.push([
    'postgres-primary',
    'service',
    ep(t.postgres.primary),
    `stand-in: routes to the member answering GET /primary; db ${t.postgres.database}, user ${t.postgres.user}`,
  ]);
  rows.push(['postgres-readonly', 'service', ep(t.postgres.readOnly), 'stand-in: members answering GET /replica']);
  const members = await t.postgres.cluster().catch(() => []);
  for (const m of t.postgres.members) {
    const state = members.find((x) => x.name === m.name);
    rows.push([
      m.name,
      state?.role ?? '?',
      ep(m),
      `Patroni http://${ep(m.rest)}/patroni, timeline ${state?.timeline ?? '?'}`,
    ]);
  }
  for (const p of t.poolers) {
    rows.push([
      p.proxy.name,
      'service',
      ep(p.service),
      `stand-in: ${p.pods.length} PgBouncer pods, transaction pooling`,
    ]);
    for (const pod of p.pods) rows.push([pod.name, 'pgbouncer', ep(pod), '']);
  }
  const roles = await redisRoles(t.redis);
  t.redis.nodes.forEach((n, i) => rows.push([`redis-${i}`, roles[i], ep(n), n.hostname]));
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
