/**
 * The local twin: the whole topology of one environment on loopback, from its
 * synthesized objects. PostgreSQL primary + replicas and the Redis Cluster come
 * from the data-tier launcher (shipped ConfigMap files), the API runs as many
 * processes as the HPA minimum with the Deployment's env, and nginx runs the
 * shipped nginx.conf in front of them. The twin plays the endpoints
 * controller: nginx's upstream list is the set of pods "in rotation".
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SERVICE_ENV, SERVICE_PATHS } from '../../../service/src/contract';
import type { EnvironmentConfig } from '../../../stacks/config';
import { loadEnvironment } from '../../../stacks/environments';
import { synthObjects } from '../../../stacks/synth';
import { type PostgresLaunch, startPostgres } from '../launcher/postgres';
import { type Endpoint, makeTempDir, removeDir, waitFor } from '../launcher/processes';
import { type RedisClusterLaunch, startRedisCluster } from '../launcher/redis';
import type { KubeObject } from '../../k8s/objects';
import { type RunningNginx, startNginx } from '../nginx-runner';
import type { ApiPod, DeploymentLike, PodWiring } from './api-pods';
import { type PodMode, podRunner } from './pod-runner';
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
  /** Aborts the start after the current step, stopping what is up. @default never */
  readonly signal?: AbortSignal;
  /** API pods as processes from source, or as containers of the built image (`npm run image:build`). @default 'process' */
  readonly pods?: PodMode;
}

export interface Twin {
  readonly env: string;
  readonly config: EnvironmentConfig;
  readonly objects: readonly KubeObject[];
  /** Base URL of the edge (nginx), e.g. http://127.0.0.1:PORT */
  readonly url: string;
  readonly edge: RunningNginx;
  readonly postgres: PostgresLaunch;
  readonly redis: RedisClusterLaunch;
  /** Current pods (a restarted pod replaces its predecessor at the same index). */
  readonly pods: ApiPod[];
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
  startPod(name?: string, opts?: { overrides?: Readonly<Record<string, string>>; rotation?: boolean }): Promise<ApiPod>;
  /** Replaces a dead or live pod with a fresh one of the same name (the kubelet restarting its container). */
  restartPod(pod: ApiPod): Promise<ApiPod>;
  /** Rewrites nginx's upstream list to `pods` (the endpoints controller's job). */
  setRotation(pods: readonly ApiPod[]): Promise<void>;
  /**
   * Rolling update as the Deployment does it (maxUnavailable 0, one surge pod at a time):
   * new pod ready -> in rotation -> old pod out of rotation -> old pod terminated
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
  const config = loadEnvironment(opts.env);
  const objects = synthObjects(config);
  const deployment = find(objects, 'Deployment', 'api') as unknown as DeploymentLike;
  const hpa = find(objects, 'HorizontalPodAutoscaler', 'api') as { spec?: { minReplicas?: number } };
  const edgeConf = (find(objects, 'ConfigMap', 'edge-nginx-conf').data as Record<string, string> | undefined)?.[
    'nginx.conf'
  ];
  if (!edgeConf) throw new Error("ConfigMap 'edge-nginx-conf' has no nginx.conf");
  const replicas = opts.apiReplicas ?? hpa.spec?.minReplicas ?? 1;
  step(`environment ${config.name}: ${objects.length} objects, ${replicas} API pods (HPA minimum)`);

  let postgres: PostgresLaunch | undefined;
  let redis: RedisClusterLaunch | undefined;
  let edge: RunningNginx | undefined;
  let secretsDir: string | undefined;
  let monitoring: TwinMonitoring | undefined;
  const pods: ApiPod[] = [];
  const dying = new Set<ApiPod>();
  const outside: ApiPod[] = [];
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
    await edge?.stop();
    // No traffic reaches the pods once nginx is gone, so the drain would only wait.
    await Promise.all([...pods, ...dying, ...outside].map((p) => p.kill()));
    await Promise.all([redis?.stop(), postgres?.stop()]);
    if (secretsDir) removeDir(secretsDir);
    step('stopped: every process exited, every directory removed');
  };

  try {
    step(
      `starting PostgreSQL primary + ${config.postgres.replicas} replicas and the Redis Cluster ` +
        `(${config.redis.masters * (1 + config.redis.replicasPerMaster)} nodes) from ConfigMaps postgres-config, redis-config`,
    );
    [postgres, redis] = await Promise.all([
      startPostgres(objects, {
        replicas: config.postgres.replicas,
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
      `PostgreSQL up in ${postgres.bringUpMs} ms: primary ${at([postgres.primary])}, replicas ${at(postgres.replicas)}`,
    );
    step(`Redis Cluster ok in ${redis.bringUpMs} ms: ${at(redis.nodes)}`);

    secretsDir = makeTempDir('fastnext-twin-');
    const managementToken = randomBytes(24).toString('base64url');
    const secret = (name: string, value: string) => {
      const p = join(secretsDir!, name);
      writeFileSync(p, `${value}\n`, { mode: 0o600 });
      return p;
    };
    const wiring: PodWiring = {
      postgresPrimary: postgres.primary,
      postgresReplicas: postgres.replicas,
      redisNodes: redis.nodes,
      secretFiles: {
        [SERVICE_ENV.postgresPasswordFile]: secret('postgres-password', postgres.password),
        [SERVICE_ENV.redisPasswordFile]: secret('redis-password', redis.password),
        [SERVICE_ENV.managementTokenFile]: secret('management-token', managementToken),
      },
      hostsFile: join(secretsDir, 'hosts'),
      logDir: secretsDir,
      overrides: opts.apiOverrides,
    };
    // What the headless Services' DNS would answer: the Redis nodes announce these names.
    writeFileSync(wiring.hostsFile, redis.nodes.map((n) => `${n.hostname} ${n.host}\n`).join(''));

    let seq = 0;
    const startPod = podRunner(opts.pods ?? 'process');
    const newPod = (name = `api-${seq++}`, overrides?: Readonly<Record<string, string>>) =>
      startPod(deployment, overrides ? { ...wiring, overrides: { ...wiring.overrides, ...overrides } } : wiring, name);
    // The first pod runs the migrate init container alone (as the first pod of a rollout
    // does); the rest start in parallel.
    step(
      `starting ${replicas} API pods as ${opts.pods === 'container' ? 'containers' : 'processes'} (init container migrate, then readiness)`,
    );
    pods.push(await newPod());
    pods.push(...(await Promise.all(Array.from({ length: replicas - 1 }, () => newPod()))));
    step(`API pods ready: ${pods.map((p) => `${p.name} in ${p.startMs} ms`).join(', ')}`);

    const endpoints = (ps: readonly ApiPod[]): Endpoint[] => ps.map((p) => p.http);
    edge = await startNginx({ nginxConf: edgeConf, upstreams: endpoints(pods) });
    const url = `http://${edge.http.host}:${edge.http.port}`;
    // Ready = every pod reports every component up (primary, replicas, Redis), and nginx answers.
    for (const p of pods) {
      await waitFor(
        `${p.name} deep health 'up'`,
        async () => (await deepStatus(`http://${p.http.host}:${p.http.port}`)) === 'up',
        30000,
        p.log,
      );
    }
    await waitFor('deep health through nginx', async () => (await deepStatus(url)) === 'up', 30000);
    step(`nginx up on ${url}; deep health of every pod and through nginx: up`);

    if (opts.monitoring) {
      step('starting exporters and Prometheus (shipped prometheus.yml, pod discovery replaced by static targets)');
      monitoring = await startMonitoring({ objects, namespace: config.namespace, postgres, redis, edge, pods });
      step(`Prometheus up on ${monitoring.prometheus} with ${monitoring.targets.length} targets`);
    }

    const running = { postgres, redis, edge, monitoring };
    const setRotation = (ps: readonly ApiPod[]) => running.edge.reload(endpoints(ps));
    const twin: Twin = {
      env: config.name,
      config,
      objects,
      url,
      ...running,
      pods,
      managementToken,
      wiring,
      readyMs: Date.now() - t0,
      table: () => renderTable(twin),
      setRotation,
      async startPod(name, o = {}) {
        const pod = await newPod(name, o.overrides);
        if (o.rotation === false) {
          outside.push(pod);
          return pod;
        }
        pods.push(pod);
        await setRotation(pods);
        return pod;
      },
      async restartPod(pod) {
        if (pod.alive()) await pod.kill();
        const fresh = await newPod(pod.name);
        pods.splice(pods.indexOf(pod), 1, fresh);
        await setRotation(pods);
        return fresh;
      },
      async rollingRestart() {
        const old = [...pods];
        const drains: Promise<{ exitCode: number | null; ms: number }>[] = [];
        for (const o of old) {
          const fresh = await newPod();
          pods.splice(pods.indexOf(o), 1, fresh);
          // Out of rotation first: the endpoints controller drops a terminating pod at once.
          await setRotation(pods);
          dying.add(o);
          drains.push(o.terminate().finally(() => dying.delete(o)));
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
    for (const x of t.monitoring.targets.filter((m) => m.app !== 'api')) {
      rows.push([`${x.app}-exporter`, 'exporter', `http://127.0.0.1:${x.port}/metrics`, `for ${x.pod}`]);
    }
  }
  rows.push([
    'postgres-primary',
    'primary',
    ep(t.postgres.primary),
    `db ${t.postgres.database}, user ${t.postgres.user}`,
  ]);
  for (const r of t.postgres.replicas) rows.push([r.podName, 'replica', ep(r), `slot ${r.slot}`]);
  const roles = await redisRoles(t.redis);
  t.redis.nodes.forEach((n, i) => rows.push([`redis-${i}`, roles[i], ep(n), n.hostname]));
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
