/**
 * Monitoring of the local twin (opt-in: `local:up -- --monitoring`): the Debian
 * exporters beside every PostgreSQL and Redis server and nginx, and Prometheus
 * running the shipped prometheus.yml and rule files from the prometheus-config
 * ConfigMap. What pod discovery would produce is the one substitution: each
 * `kubernetes_sd_configs` (role pod) becomes static target groups carrying the
 * labels discovery gives a pod (namespace, name, app label, phase, and the pod
 * template's prometheus.io annotations with the port swapped for the loopback
 * one), so the shipped relabeling runs unchanged. Jobs on other roles (Service
 * endpoints) have nothing to discover on loopback and are left out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { podTargetGroup, type ScrapeAnnotations, startExporter, stopAll } from '../metrics-check/servers';
import { freePort, makeTempDir, removeDir, spawnServer, stopGroup, waitFor } from '../launcher/processes';
import type { PostgresLaunch } from '../launcher/postgres';
import type { RedisClusterLaunch } from '../launcher/redis';
import type { KubeObject } from '../../k8s/objects';
import { filesFrom } from '../launcher/sources';
import { PROMETHEUS_FILES } from '../../../constructs/monitoring/prometheus-config';
import type { RunningNginx } from '../nginx-runner';
import type { ApiPod } from './api-pods';

export interface TwinMonitoring {
  /** Prometheus' base URL. */
  readonly prometheus: string;
  /** What Prometheus scrapes: pod name, app and loopback metrics port. */
  readonly targets: readonly { pod: string; app: string; port: number }[];
  stop(): Promise<void>;
}

interface ScrapeJob {
  job_name: string;
  kubernetes_sd_configs?: { role: string }[];
  static_configs?: unknown[];
  [k: string]: unknown;
}

/** Annotations of the pod template of workload `name`. */
function podAnnotations(objects: readonly KubeObject[], name: string): Record<string, string> {
  const o = objects.find((x) => x.metadata?.name === name && (x.kind === 'Deployment' || x.kind === 'StatefulSet'));
  const spec = o?.spec as { template?: { metadata?: { annotations?: Record<string, string> } } } | undefined;
  const a = spec?.template?.metadata?.annotations;
  if (!a?.['prometheus.io/scrape']) throw new Error(`workload '${name}' has no prometheus.io/scrape pod annotation`);
  return a;
}

/** A pod's `prometheus.io/*` annotations by short name, its port pointed at the loopback one. */
function scrapeAnnotations(annotations: Record<string, string>, port: number): ScrapeAnnotations {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) {
    const m = /^prometheus\.io\/(\w+)$/.exec(k);
    if (m) out[m[1]] = m[1] === 'port' ? String(port) : v;
  }
  return out;
}

export async function startMonitoring(t: {
  objects: readonly KubeObject[];
  namespace: string;
  postgres: PostgresLaunch;
  redis: RedisClusterLaunch;
  edge: RunningNginx;
  pods: readonly ApiPod[];
}): Promise<TwinMonitoring> {
  // The exporters and Prometheus are registered with metrics-check's process list; make sure an
  // abrupt exit of the twin process still ends them.
  process.once('exit', stopAll);
  try {
    const su = t.postgres.superuser;
    const pg = (host: string, port: number) => startExporter({ kind: 'postgres', host, port, ...su });
    const targets = [
      {
        pod: 'postgres-primary-0',
        app: 'postgres',
        workload: 'postgres-primary',
        port: await pg(t.postgres.primary.host, t.postgres.primary.port),
      },
      ...(await Promise.all(
        t.postgres.replicas.map(async (r) => ({
          pod: r.podName,
          app: 'postgres',
          workload: 'postgres-replica',
          port: await pg(r.host, r.port),
        })),
      )),
      ...(await Promise.all(
        t.redis.nodes.map(async (n, i) => ({
          pod: `redis-${i}`,
          app: 'redis',
          workload: 'redis',
          port: await startExporter({ kind: 'redis', host: n.host, port: n.port, password: t.redis.password }),
        })),
      )),
      {
        pod: 'edge-0',
        app: 'edge',
        workload: 'edge',
        port: await startExporter({ kind: 'nginx', port: t.edge.status.port }),
      },
      ...t.pods.map((p) => ({ pod: p.name, app: 'api', workload: 'api', port: p.metrics.port })),
    ];

    const files = filesFrom(t.objects, 'prometheus-config', [PROMETHEUS_FILES.config]);
    const config = parse(files[PROMETHEUS_FILES.config]) as { scrape_configs: ScrapeJob[] };
    const groups = targets.map((x) =>
      podTargetGroup({
        namespace: t.namespace,
        pod: x.pod,
        app: x.app,
        annotations: scrapeAnnotations(podAnnotations(t.objects, x.workload), x.port),
      }),
    );
    const dir = makeTempDir('fastnext-twin-prometheus-');
    const port = await freePort('127.0.0.1');
    const listen = `127.0.0.1:${port}`;
    config.scrape_configs = config.scrape_configs
      .filter((j) => !j.kubernetes_sd_configs || j.kubernetes_sd_configs.every((sd) => sd.role === 'pod'))
      .map((j) => {
        if (j.job_name === 'prometheus') return { ...j, static_configs: [{ targets: [listen] }] };
        if (!j.kubernetes_sd_configs) return j;
        const rest: ScrapeJob = { ...j, static_configs: groups };
        delete rest.kubernetes_sd_configs;
        return rest;
      });
    // The rule files keep their ConfigMap names, next to prometheus.yml as in the mounted volume.
    for (const [name, text] of Object.entries(files))
      if (name !== PROMETHEUS_FILES.config) writeFileSync(join(dir, name), text);
    writeFileSync(join(dir, PROMETHEUS_FILES.config), stringify(config));
    mkdirSync(join(dir, 'data'));
    // The StatefulSet's args, with the config path, data path and listen address substituted.
    const ss = t.objects.find((o) => o.kind === 'StatefulSet' && o.metadata?.name === 'prometheus')?.spec as
      { template: { spec: { containers: { args?: string[] }[] } } } | undefined;
    const args = (ss?.template.spec.containers[0].args ?? []).map((a) =>
      a.startsWith('--config.file=')
        ? `--config.file=${join(dir, PROMETHEUS_FILES.config)}`
        : a.startsWith('--storage.tsdb.path=')
          ? `--storage.tsdb.path=${join(dir, 'data')}`
          : a.startsWith('--web.listen-address=')
            ? `--web.listen-address=${listen}`
            : a,
    );
    const proc = spawnServer('/usr/bin/prometheus', args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      cwd: dir,
      logFile: join(dir, 'prometheus.log'),
    });
    const url = `http://${listen}`;
    await waitFor('prometheus ready', async () => (await fetch(`${url}/-/ready`)).ok, 30000, proc.log, proc);
    return {
      prometheus: url,
      targets: targets.map(({ pod, app, port: p }) => ({ pod, app, port: p })),
      async stop() {
        await stopGroup(proc, 'SIGTERM', 5000);
        removeDir(dir);
        stopAll();
      },
    };
  } catch (e) {
    stopAll();
    throw e;
  }
}
