/**
 * API "pods" of the local twin: child processes running the service from source
 * with the env the synthesized api Deployment sets. Only addresses (database,
 * cache, listen ports) and secret file paths are substituted; every other env
 * var passes through as synthesized. Init containers run before each pod, and
 * `terminate()` follows the pod termination sequence: out of the endpoints,
 * preStop, SIGTERM, SIGKILL at terminationGracePeriodSeconds.
 */
import { join } from 'node:path';
import { SERVICE_COMMANDS, SERVICE_ENV, SERVICE_PATHS } from '../../../service/src/contract';
import { type Endpoint, type Proc, freePort, runToEnd, spawnServer, stopGroup, waitFor } from '../launcher/processes';

const ROOT = join(__dirname, '..', '..', '..');
const SERVICE_ENTRY = 'service/src/server.ts';

interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: unknown;
}
export interface Probe {
  readonly httpGet?: { readonly path: string; readonly port: number | string };
  readonly periodSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly failureThreshold?: number;
  readonly initialDelaySeconds?: number;
}
export interface SecurityContext {
  readonly runAsUser?: number;
  readonly runAsGroup?: number;
  readonly runAsNonRoot?: boolean;
  readonly fsGroup?: number;
  readonly readOnlyRootFilesystem?: boolean;
  readonly allowPrivilegeEscalation?: boolean;
  readonly privileged?: boolean;
  readonly capabilities?: { readonly drop?: readonly string[]; readonly add?: readonly string[] };
  readonly seccompProfile?: { readonly type: string };
}
export interface Container {
  readonly name: string;
  readonly image?: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly workingDir?: string;
  readonly env?: readonly EnvVar[];
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly securityContext?: SecurityContext;
  readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string; readonly readOnly?: boolean }[];
  readonly resources?: { readonly limits?: { readonly cpu?: string; readonly memory?: string } };
  readonly startupProbe?: Probe;
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly lifecycle?: { readonly preStop?: { readonly exec?: { readonly command?: readonly string[] } } };
}
export interface Volume {
  readonly name: string;
  readonly emptyDir?: { readonly medium?: string; readonly sizeLimit?: string };
  readonly secret?: { readonly secretName: string };
}
/** The pod template of the synthesized api Deployment: what the twin and the container test run. */
export interface PodSpecLike {
  readonly containers: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly terminationGracePeriodSeconds?: number;
  readonly securityContext?: SecurityContext;
  readonly volumes?: readonly Volume[];
}
/** The parts of the synthesized api Deployment the twin runs. */
export interface DeploymentLike {
  readonly metadata: { readonly name: string };
  readonly spec: { readonly template: { readonly spec: PodSpecLike } };
}

/** Where the twin's dependencies live and which secret files to mount. */
export interface PodWiring {
  readonly postgresPrimary: Endpoint;
  readonly postgresReplicas: readonly Endpoint[];
  readonly redisNodes: readonly Endpoint[];
  /** Secret file paths by env var name (the `*_FILE` variables). */
  readonly secretFiles: Readonly<Record<string, string>>;
  /** "name address" lines: the cluster DNS stand-in read by hosts-preload.js. */
  readonly hostsFile: string;
  /** Where each pod's log file (`<name>.log`, stdout and stderr) goes. */
  readonly logDir: string;
  /** Extra env the caller sets on purpose (e.g. the bench's CACHE_ENABLED=false); listed in the table. */
  readonly overrides?: Readonly<Record<string, string>>;
}

const hostPorts = (eps: readonly Endpoint[]) => eps.map((e) => `${e.host}:${e.port}`).join(',');

/**
 * The container env with addresses and listen ports substituted (pods share the host's
 * network here) and, for processes, secret paths (a container mounts them where the
 * Deployment says: `mountedSecrets`); throws on anything it cannot run.
 */
export function podEnv(
  container: Container,
  wiring: PodWiring,
  ports: { http: number; metrics: number },
  mountedSecrets = false,
): Record<string, string> {
  const E = SERVICE_ENV;
  const addresses: Record<string, string> = {
    [E.port]: String(ports.http),
    [E.metricsPort]: String(ports.metrics),
    [E.postgresServer]: hostPorts([wiring.postgresPrimary]),
    [E.postgresReadReplicas]: hostPorts(wiring.postgresReplicas),
    [E.redisClusterNodes]: hostPorts(wiring.redisNodes),
  };
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    if (v.value === undefined) {
      throw new Error(
        `container '${container.name}' env ${v.name} uses valueFrom; the twin runs only literal values ` +
          '(mount secrets as files and point a *_FILE variable at them)',
      );
    }
    if (v.name in addresses) env[v.name] = addresses[v.name];
    else if (v.name.endsWith('_FILE')) {
      const file = wiring.secretFiles[v.name];
      if (!file)
        throw new Error(`container '${container.name}' env ${v.name} (${v.value}): the twin has no secret for it`);
      env[v.name] = mountedSecrets ? v.value : file;
    } else env[v.name] = v.value;
  }
  for (const name of [E.port, E.metricsPort]) env[name] = addresses[name];
  const replicas = (container.env ?? []).find((v) => v.name === E.postgresReadReplicas)?.value ?? '';
  const shipped = replicas.split(',').filter(Boolean).length;
  if (shipped !== wiring.postgresReplicas.length) {
    throw new Error(
      `${E.postgresReadReplicas} lists ${shipped} replicas but the twin runs ${wiring.postgresReplicas.length}`,
    );
  }
  return { ...env, ...wiring.overrides };
}

/** `node dist/server.js <args>` (the image) -> `node tools/run.js service/src/server.ts <args>` (this checkout). */
export function localCommand(container: Container): string[] {
  const cmd = [...(container.command ?? []), ...(container.args ?? [])];
  const entry = SERVICE_COMMANDS.entrypoint;
  if (!entry.every((part, i) => cmd[i] === part)) {
    throw new Error(
      `container '${container.name}' command ${JSON.stringify(cmd)} does not start with ${JSON.stringify(entry)}`,
    );
  }
  return [
    process.execPath,
    '-r',
    join(__dirname, 'hosts-preload.js'),
    join(ROOT, 'tools', 'run.js'),
    join(ROOT, SERVICE_ENTRY),
    ...cmd.slice(entry.length),
  ];
}

function baseEnv(hostsFile?: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    NODE_ENV: 'production',
  };
  if (hostsFile) env.FASTNEXT_TWIN_HOSTS = hostsFile;
  return env;
}

async function httpStatus(ep: Endpoint, path: string, timeoutMs = 2000): Promise<number> {
  const res = await fetch(`http://${ep.host}:${ep.port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  return res.status;
}

export interface ApiPod {
  readonly name: string;
  readonly http: Endpoint;
  readonly metrics: Endpoint;
  readonly pid: number;
  /** Milliseconds from spawning the init containers to readiness 200. */
  readonly startMs: number;
  readonly env: Readonly<Record<string, string>>;
  log(): string;
  alive(): boolean;
  /** SIGKILL (a crashed container). */
  kill(): Promise<void>;
  /** preStop, then SIGTERM, then SIGKILL once terminationGracePeriodSeconds have passed. Resolves on exit. */
  terminate(): Promise<{ exitCode: number | null; ms: number }>;
}

/** Starts one pod: init containers to completion, then the main container, then waits for readiness. */
export async function startApiPod(
  deployment: DeploymentLike,
  wiring: PodWiring,
  name: string,
  timeoutMs = 60000,
): Promise<ApiPod> {
  const spec = deployment.spec.template.spec;
  const main = spec.containers.find((c) => c.name === 'api') ?? spec.containers[0];
  const t0 = Date.now();
  const ports = { http: await freePort('0.0.0.0'), metrics: await freePort('0.0.0.0') };
  for (const init of spec.initContainers ?? []) {
    const [cmd, ...args] = localCommand(init);
    const r = await runToEnd(cmd, args, {
      env: { ...baseEnv(wiring.hostsFile), ...podEnv(init, wiring, ports) },
      cwd: ROOT,
    });
    if (r.code !== 0) throw new Error(`${name}: init container '${init.name}' exited ${r.code}:\n${r.output}`);
  }
  const env = podEnv(main, wiring, ports);
  const cmd = localCommand(main);
  const proc: Proc = spawnServer(cmd[0], cmd.slice(1), {
    env: { ...baseEnv(wiring.hostsFile), ...env },
    cwd: ROOT,
    logFile: join(wiring.logDir, `${name}.log`),
  });
  const http = { host: '127.0.0.1', port: ports.http };
  const pod: ApiPod = {
    name,
    http,
    metrics: { host: '127.0.0.1', port: ports.metrics },
    pid: proc.pid,
    startMs: 0,
    env,
    log: proc.log,
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    kill: () => stopGroup(proc, 'SIGKILL', 0),
    async terminate() {
      const started = Date.now();
      const grace = (spec.terminationGracePeriodSeconds ?? 30) * 1000;
      const preStop = main.lifecycle?.preStop?.exec?.command;
      // The kubelet runs preStop inside the grace period; here the same command runs on the host.
      if (preStop?.length) await runToEnd(preStop[0], preStop.slice(1), { env: baseEnv(), cwd: ROOT });
      await stopGroup(proc, 'SIGTERM', Math.max(0, grace - (Date.now() - started)));
      return { exitCode: proc.child.exitCode, ms: Date.now() - started };
    },
  };
  try {
    await waitFor(
      `${name} readiness on ${http.host}:${http.port}`,
      async () => (await httpStatus(http, SERVICE_PATHS.readiness)) === 200,
      timeoutMs,
      proc.log,
      proc,
    );
  } catch (e) {
    await pod.kill();
    throw e;
  }
  return { ...pod, startMs: Date.now() - t0 };
}

/**
 * Each metric in `names` summed over all its series (every label set) and over
 * every pod, read from the pods' /metrics now.
 */
export async function sumPodMetrics<N extends string>(
  pods: readonly ApiPod[],
  names: Readonly<Record<N, string>>,
): Promise<Record<N, number>> {
  const sum = Object.fromEntries(Object.keys(names).map((k) => [k, 0])) as Record<N, number>;
  for (const p of pods) {
    const text = await (await fetch(`http://${p.metrics.host}:${p.metrics.port}/metrics`)).text();
    for (const [key, name] of Object.entries(names) as [N, string][]) {
      for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum[key] += Number(m[1]);
    }
  }
  return sum;
}
