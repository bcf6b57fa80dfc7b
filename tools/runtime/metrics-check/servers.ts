/**
 * What the metric-existence proof runs besides the data tier's launcher
 * (tools/runtime/launcher: PostgreSQL and Redis Cluster from the shipped files): nginx
 * with stub_status, the three Debian exporters, the bundled API service and a
 * Prometheus. Every process runs in its own process group; `stopAll()` kills the
 * groups and removes the temp dirs.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Endpoint,
  freePort as launcherFreePort,
  makeTempDir,
  type Proc,
  removeDir,
  spawnServer,
  waitFor as launcherWaitFor,
} from '../launcher/processes';

const HOST = '127.0.0.1';

export type { Endpoint };

/** What stopAll() stops: the launcher's processes (process groups, exit-time cleanup) with a name each. */
const procs: { readonly name: string; readonly proc: Proc }[] = [];
const dirs: string[] = [];
let logDir: string | undefined;

/** A free loopback port (below the ephemeral range, like every port the launcher picks). */
export const freePort = (): Promise<number> => launcherFreePort(HOST);

/** A temp dir that stopAll() removes (and the launcher at exit, should stopAll() not run). */
export function tempDir(prefix: string): string {
  const d = makeTempDir(prefix);
  dirs.push(d);
  return d;
}

/** Starts `cmd` in its own process group, its output in a log file; `stopAll()` kills it. */
export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: { uid?: number; env?: Record<string, string> } = {},
): Proc {
  logDir ??= tempDir('metrics-logs-');
  const proc = spawnServer(cmd, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
    uid: opts.uid,
    gid: opts.uid,
    logFile: join(logDir, `${name}-${procs.length}.log`),
  });
  procs.push({ name, proc });
  return proc;
}

const start = startProcess;

/** Polls `probe` until it returns true; throws with the processes' logs after `timeoutMs`. */
export async function waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 20000): Promise<void> {
  const logs = () =>
    procs
      .map(({ name, proc }) => `--- ${name} (exit ${String(proc.child.exitCode)})\n${proc.log().slice(-2000)}`)
      .join('\n');
  await launcherWaitFor(what, probe, timeoutMs, logs);
}

async function httpOk(url: string): Promise<boolean> {
  const r = await fetch(url);
  return r.ok;
}

export function stopAll(): void {
  for (const { proc } of procs.splice(0)) {
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  // removeDir also kills whatever still works under a dir (a server that left its group).
  for (const d of dirs.splice(0)) removeDir(d);
  logDir = undefined;
}

/** nginx with only a stub_status location (what the edge's internal status port serves). */
export async function startNginx(): Promise<number> {
  const root = tempDir('metrics-nginx-');
  const port = await freePort();
  writeFileSync(
    join(root, 'nginx.conf'),
    `daemon off;\npid ${root}/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n` +
      ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${root};\n`).join('') +
      `  server { listen ${HOST}:${port}; location = /stub_status { stub_status; } }\n}\n`,
  );
  start('nginx', '/usr/sbin/nginx', ['-c', join(root, 'nginx.conf'), '-p', root]);
  await waitFor('nginx', () => httpOk(`http://${HOST}:${port}/stub_status`));
  return port;
}

/** What a Debian exporter scrapes: a PostgreSQL or Redis endpoint with credentials, or nginx's stub_status port. */
export type ExporterTarget =
  | {
      kind: 'postgres';
      host: string;
      port: number;
      user: string;
      password: string;
      queriesFile?: string;
      /** The CA to verify the server with (sslmode=verify-full, as the shipped sidecar); omitted: plaintext. */
      caFile?: string;
    }
  | {
      kind: 'redis';
      host: string;
      port: number;
      username: string;
      password: string;
      /** The CA to verify the node with (rediss://, as the shipped sidecar with redis.tls); omitted: plaintext. */
      caFile?: string;
    }
  | { kind: 'nginx'; port: number };

/** Exporter binaries: Debian 12's (postgres 0.11.1, redis 1.45.0, nginx 0.11.0) and Debian 13's
 * (0.17.1, 1.69.0, 1.4.1, unpacked by tools/install-servers.sh), which bracket the pinned images. */
export const EXPORTERS = {
  debian12: '/usr/bin',
  debian13: join(__dirname, '..', '..', '..', '.cache', 'exporters-debian13', 'usr', 'bin'),
} as const;
export type ExporterSet = keyof typeof EXPORTERS;

/** Starts a Debian exporter and waits until its /metrics answers. `--flag=value` suits both flag parsers. */
export async function startExporter(target: ExporterTarget, set: ExporterSet = 'debian12'): Promise<number> {
  const port = await freePort();
  const listen = `${HOST}:${port}`;
  const bin = (name: string) => join(EXPORTERS[set], `prometheus-${name}-exporter`);
  if (target.kind === 'postgres') {
    const ssl = target.caFile
      ? `sslmode=verify-full&sslrootcert=${encodeURIComponent(target.caFile)}`
      : 'sslmode=disable';
    const dsn = `postgresql://${target.user}:${encodeURIComponent(target.password)}@${target.host}:${target.port}/postgres?${ssl}`;
    // The shipped extra queries (pgBackRest's backups), as the pod's PG_EXPORTER_EXTEND_QUERY_PATH names them.
    const extra = target.queriesFile ? [`--extend.query-path=${target.queriesFile}`] : [];
    start(`postgres-exporter-${set}-${target.port}`, bin('postgres'), [`--web.listen-address=${listen}`, ...extra], {
      env: { DATA_SOURCE_NAME: dsn },
    });
  } else if (target.kind === 'redis') {
    start(
      `redis-exporter-${set}-${target.port}`,
      bin('redis'),
      [
        `--redis.addr=${target.caFile ? 'rediss' : 'redis'}://${target.host}:${target.port}`,
        `--web.listen-address=${listen}`,
      ],
      {
        env: {
          REDIS_USER: target.username,
          REDIS_PASSWORD: target.password,
          // The variable the shipped pod sets (constructs/redis/redis-cluster.ts).
          ...(target.caFile ? { REDIS_EXPORTER_TLS_CA_CERT_FILE: target.caFile } : {}),
        },
      },
    );
  } else {
    start(`nginx-exporter-${set}`, bin('nginx'), [
      `--nginx.scrape-uri=http://${HOST}:${target.port}/stub_status`,
      `--web.listen-address=${listen}`,
    ]);
  }
  await waitFor(`${set} ${target.kind} exporter`, () => httpOk(`http://${listen}/metrics`));
  return port;
}

/** Debian 12's Prometheus 2.42 (built without kubernetes_sd). */
export const DEBIAN_PROMETHEUS = '/usr/bin/prometheus';
/** Debian 13's Prometheus 2.53.3, the version of the shipped image (tools/install-servers.sh unpacks it). */
export const SHIPPED_VERSION_PROMETHEUS = join(
  __dirname,
  '..',
  '..',
  '..',
  '.cache',
  'prometheus',
  'usr',
  'bin',
  'prometheus',
);

/** A Prometheus binary with the given config file, storage in a temp dir. */
export async function startPrometheus(configFile: string, binary = DEBIAN_PROMETHEUS): Promise<string> {
  const port = await freePort();
  const data = tempDir('metrics-prom-');
  start('prometheus', binary, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${data}`,
    `--web.listen-address=${HOST}:${port}`,
  ]);
  const url = `http://${HOST}:${port}`;
  await waitFor('prometheus ready', () => httpOk(`${url}/-/ready`));
  return url;
}

/** Metric names in a Prometheus text exposition. */
export function namesInExposition(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

/**
 * The bundled API service (service/src/server.ts, transpiled on load) against
 * the servers above; resolves with its metrics URL once /metrics answers and a
 * liveness request has been observed by the request histogram.
 */
export async function startService(opts: {
  postgres: { primary: Endpoint; replicas: readonly Endpoint[]; database: string; user: string; password: string };
  redis: { nodes: readonly Endpoint[]; username: string; password: string };
}): Promise<string> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const root = join(__dirname, '..', '..', '..');
  const hostPort = (e: Endpoint) => `${e.host}:${e.port}`;
  start('api-service', process.execPath, [join(root, 'tools', 'run.js'), join(root, 'service', 'src', 'server.ts')], {
    env: {
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'warn',
      POSTGRES_SERVER: hostPort(opts.postgres.primary),
      POSTGRES_READ_REPLICAS: opts.postgres.replicas.map(hostPort).join(','),
      POSTGRES_DB: opts.postgres.database,
      POSTGRES_USER: opts.postgres.user,
      POSTGRES_PASSWORD: opts.postgres.password,
      REDIS_CLUSTER_NODES: opts.redis.nodes.map(hostPort).join(','),
      REDIS_USERNAME: opts.redis.username,
      REDIS_PASSWORD: opts.redis.password,
      CACHE_WARM_ON_START: 'false',
      MANAGEMENT_TOKEN: 'metrics-check-management-token',
      SHUTDOWN_DRAIN_SECONDS: '0',
    },
  });
  const metricsUrl = `http://${HOST}:${metricsPort}/metrics`;
  await waitFor('API service metrics', () => httpOk(metricsUrl), 30000);
  await waitFor('API service liveness', () => httpOk(`http://${HOST}:${port}/api/v1/scaling/health/liveness`));
  return metricsUrl;
}

/** The `prometheus.io/*` pod annotations, by their short name. */
export interface ScrapeAnnotations {
  scrape?: string;
  port?: string;
  path?: string;
}

/** The discovery labels of `prometheus.io/*` annotations on a pod or a Service (value and presence). */
function annotationLabels(on: 'pod' | 'service', annotations: ScrapeAnnotations): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) {
    if (v === undefined) continue;
    labels[`__meta_kubernetes_${on}_annotation_prometheus_io_${k}`] = v;
    labels[`__meta_kubernetes_${on}_annotationpresent_prometheus_io_${k}`] = 'true';
  }
  return labels;
}

/**
 * The target group kubernetes_sd (role endpoints) produces for one endpoint of an annotated
 * Service: the Service's name and `prometheus.io/*` annotations, and the labels of the pod
 * behind it. Stands in for endpoints discovery wherever no API server runs.
 */
export function serviceTargetGroup(p: {
  namespace: string;
  service: string;
  pod: string;
  app: string;
  annotations: ScrapeAnnotations;
  targets?: string[];
}): { targets: string[]; labels: Record<string, string> } {
  const labels: Record<string, string> = {
    __meta_kubernetes_namespace: p.namespace,
    __meta_kubernetes_service_name: p.service,
    __meta_kubernetes_pod_name: p.pod,
    __meta_kubernetes_pod_label_app_kubernetes_io_name: p.app,
  };
  return { targets: p.targets ?? ['127.0.0.1'], labels: { ...labels, ...annotationLabels('service', p.annotations) } };
}

/**
 * The target group kubernetes_sd (role pod) produces for one pod: its discovery labels and
 * one target per container port. Stands in for pod discovery wherever no API server runs.
 */
export function podTargetGroup(p: {
  namespace: string;
  pod: string;
  app: string;
  annotations: ScrapeAnnotations;
  phase?: string;
  targets?: string[];
}): { targets: string[]; labels: Record<string, string> } {
  const labels: Record<string, string> = {
    __meta_kubernetes_namespace: p.namespace,
    __meta_kubernetes_pod_name: p.pod,
    __meta_kubernetes_pod_label_app_kubernetes_io_name: p.app,
    __meta_kubernetes_pod_phase: p.phase ?? 'Running',
  };
  return { targets: p.targets ?? ['127.0.0.1'], labels: { ...labels, ...annotationLabels('pod', p.annotations) } };
}
