/**
 * Monitoring of the local twin (opt-in: `local:up -- --monitoring`): the Debian
 * exporters beside every PostgreSQL and Redis server and nginx, Prometheus
 * running the shipped prometheus.yml and rule files from the prometheus-config
 * ConfigMap, and the Alertmanager replicas running the shipped alertmanager.yml
 * (tools/runtime/alertmanager.ts), whose URL-reading receivers (webhook, Slack)
 * all point at one loopback AlertSink. What pod discovery would produce is the
 * one substitution: each `kubernetes_sd_configs` (role pod) becomes static target
 * groups carrying the labels discovery gives a pod (namespace, name, app label,
 * phase, and the pod template's prometheus.io annotations with the port swapped
 * for the loopback one), so the shipped relabeling runs unchanged; likewise each
 * endpoint of an annotated Service (role endpoints: Patroni's REST /metrics
 * through `postgres-patroni`, one per member); the Alertmanager addresses of the
 * `alerting:` block become the loopback ones. The kubelets' job (role node) has
 * nothing to discover on loopback and is left out; kube-state-metrics' job keeps
 * none of the loopback pods (it runs only where there is an API server).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import {
  podTargetGroup,
  type ScrapeAnnotations,
  serviceTargetGroup,
  startExporter,
  stopAll,
} from '../metrics-check/servers';
import { freePort, makeTempDir, removeDir, spawnServer, stopGroup, waitFor } from '../launcher/processes';
import type { PatroniLaunch } from '../launcher/patroni';
import type { PgBouncerLaunch } from '../launcher/pgbouncer';
import type { RedisClusterLaunch } from '../launcher/redis';
import type { KubeObject } from '../../k8s/objects';
import { filesFrom } from '../launcher/sources';
import { PROMETHEUS_FILES } from '../../../constructs/monitoring/prometheus-config';
import type { RunningNginx } from '../nginx-runner';
import type { ApiPod } from './api-pods';
import { AlertSink, alertmanagerOf, type RunningAlertmanagers, sinkSecrets, startAlertmanagers } from '../alertmanager';

export interface TwinMonitoring {
  /** Prometheus' base URL. */
  readonly prometheus: string;
  /** What Prometheus scrapes: pod name, app and loopback metrics port (and the Service, for an endpoints target). */
  readonly targets: readonly { pod: string; app: string; port: number; service?: string }[];
  /** The Alertmanager replicas. */
  readonly alertmanager: RunningAlertmanagers;
  /** Where every webhook and Slack receiver delivers (`<url>/<receiver>`). */
  readonly sink: AlertSink;
  readonly sinkUrl: string;
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

/** Services that opt in to scraping with `prometheus.io/scrape: "true"` (endpoints discovery). */
function annotatedServices(objects: readonly KubeObject[]) {
  return objects
    .filter((o) => o.kind === 'Service' && o.metadata?.annotations?.['prometheus.io/scrape'] === 'true')
    .map((o) => ({
      name: o.metadata!.name!,
      annotations: o.metadata!.annotations!,
      selector: ((o.spec as { selector?: Record<string, string> } | undefined)?.selector ?? {}) as Record<
        string,
        string
      >,
    }));
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
  postgres: PatroniLaunch;
  poolers: readonly PgBouncerLaunch[];
  redis: RedisClusterLaunch;
  edge: RunningNginx;
  pods: readonly ApiPod[];
}): Promise<TwinMonitoring> {
  // The exporters and Prometheus are registered with metrics-check's process list; make sure an
  // abrupt exit of the twin process still ends them.
  process.once('exit', stopAll);
  const sink = new AlertSink();
  let alertmanager: RunningAlertmanagers | undefined;
  try {
    const sinkUrl = await sink.listen();
    alertmanager = await startAlertmanagers(t.objects, {
      secrets: sinkSecrets(alertmanagerOf(t.objects).config, sinkUrl),
    });
    // As the sidecar logs in: the exporter's own role (pg_monitor), not the superuser.
    // TLS on (staging/prod files): verify-full against the twin's CA, as the sidecar does.
    const pg = (host: string, port: number) =>
      startExporter({ kind: 'postgres', host, port, ...t.postgres.exporter, caFile: t.postgres.tls?.caFile });
    const targets = [
      ...(await Promise.all(
        t.postgres.members.map(async (m) => ({
          pod: m.name,
          app: 'postgres',
          workload: 'postgres',
          port: await pg(m.host, m.port),
        })),
      )),
      // The sidecar of each PgBouncer pod (started with the pod: exporter: true).
      ...t.poolers.flatMap((p) =>
        p.pods.flatMap((pod) =>
          pod.metrics
            ? [
                {
                  pod: pod.name,
                  app: p.proxy.name,
                  workload: p.proxy.name,
                  port: pod.metrics.port,
                },
              ]
            : [],
        ),
      ),
      ...(await Promise.all(
        t.redis.nodes.map(async (n, i) => ({
          pod: `redis-${i}`,
          app: 'redis',
          workload: 'redis',
          port: await startExporter({ kind: 'redis', host: n.host, port: n.port, ...t.redis.auth('exporter') }),
        })),
      )),
      {
        pod: 'edge-0',
        app: 'edge',
        workload: 'edge',
        port: await startExporter({ kind: 'nginx', port: t.edge.status.port }),
      },
      ...t.pods.map((p) => ({ pod: p.name, app: 'api', workload: 'api', port: p.metrics.port })),
      ...alertmanager.ports.map((p, i) => ({
        pod: `alertmanager-${i}`,
        app: 'alertmanager',
        workload: 'alertmanager',
        port: p.web,
      })),
    ];

    const files = filesFrom(t.objects, 'prometheus-config', [PROMETHEUS_FILES.config]);
    const config = parse(files[PROMETHEUS_FILES.config]) as {
      scrape_configs: ScrapeJob[];
      alerting?: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    };
    // The replicas' DNS names become their loopback addresses, in the same order.
    for (const am of config.alerting?.alertmanagers ?? []) {
      for (const sc of am.static_configs) {
        sc.targets = sc.targets.map((_, i) => `127.0.0.1:${alertmanager!.ports[i].web}`);
      }
    }
    // Endpoints of the annotated Services. Only Patroni's (`fastnext.io/patroni-cluster` in its selector)
    // has loopback endpoints here; any other annotated Service would go unscraped, so it stops the twin.
    const serviceTargets = annotatedServices(t.objects).flatMap((svc) => {
      if (!svc.selector['fastnext.io/patroni-cluster']) {
        throw new Error(`twin monitoring: annotated Service '${svc.name}' has no loopback endpoints to scrape`);
      }
      return t.postgres.members.map((m) => ({
        service: svc.name,
        pod: m.name,
        app: svc.selector['app.kubernetes.io/name'],
        host: m.rest.host,
        port: m.rest.port,
        annotations: svc.annotations,
      }));
    });
    const serviceGroups = serviceTargets.map((x) =>
      serviceTargetGroup({
        namespace: t.namespace,
        service: x.service,
        pod: x.pod,
        app: x.app,
        annotations: scrapeAnnotations(x.annotations, x.port),
        targets: [`${x.host}:${x.port}`],
      }),
    );
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
    const roleOf = (j: ScrapeJob) => j.kubernetes_sd_configs?.[0]?.role;
    config.scrape_configs = config.scrape_configs
      .filter((j) => !j.kubernetes_sd_configs || ['pod', 'endpoints'].includes(roleOf(j) ?? ''))
      .map((j) => {
        if (j.job_name === 'prometheus') return { ...j, static_configs: [{ targets: [listen] }] };
        if (!j.kubernetes_sd_configs) return j;
        const rest: ScrapeJob = { ...j, static_configs: roleOf(j) === 'endpoints' ? serviceGroups : groups };
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
    const running = alertmanager;
    return {
      prometheus: url,
      targets: [
        ...targets.map(({ pod, app, port: p }) => ({ pod, app, port: p })),
        ...serviceTargets.map(({ pod, app, port: p, service }) => ({ pod, app, port: p, service })),
      ],
      alertmanager: running,
      sink,
      sinkUrl,
      async stop() {
        await stopGroup(proc, 'SIGTERM', 5000);
        removeDir(dir);
        await running.stop();
        await sink.close();
        stopAll();
      },
    };
  } catch (e) {
    await alertmanager?.stop();
    await sink.close();
    stopAll();
    throw e;
  }
}
