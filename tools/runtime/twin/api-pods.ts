/**
 * API "pods" of the local twin: child processes running the service from source
 * with the env the synthesized api Deployment sets. Only addresses (database,
 * cache, listen ports) and secret file paths are substituted; every other env
 * var passes through as synthesized. Init containers run before each pod, and
 * `terminate()` follows the pod termination sequence: out of the endpoints,
 * preStop, SIGTERM, SIGKILL at terminationGracePeriodSeconds.
 */
import { join } from 'node:path';
import { SERVICE_COMMANDS, SERVICE_ENV, SERVICE_PATHS, SERVICE_PORTS } from '../../../service/src/contract';
import { type Endpoint, type Proc, freePort, runToEnd, spawnServer, stopGroup, waitFor } from '../launcher/processes';
import type { ProbeSpec, ProbeTarget } from './kubelet';

const ROOT = join(__dirname, '..', '..', '..');
const SERVICE_ENTRY = 'service/src/server.ts';

interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: unknown;
}
/** A core/v1 Probe as the twin's kubelet runs it. */
export type Probe = ProbeSpec;
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
  readonly configMap?: { readonly name: string };
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
  /**
   * The Service stand-ins by the `host:port` the manifests name (the PgBouncer pools for the
   * serving container, the primary Service for the migrate init container and the CronJob).
   */
  readonly services: Readonly<Record<string, Endpoint>>;
  readonly redisNodes: readonly Endpoint[];
  /** Secret file paths by env var name (the `*_FILE` variables). */
  readonly secretFiles: Readonly<Record<string, string>>;
  /** "name address" lines: the cluster DNS stand-in read by hosts-preload.js. */
  readonly hostsFile: string;
  /** Where each pod's log file (`<name>.log`, stdout and stderr) goes. */
  readonly logDir: string;
  /** Extra env the caller sets on purpose (e.g. the bench's CACHE_ENABLED=false); listed in the table. */
  readonly overrides?: Readonly<Record<string, string>>;
  /** The checkout whose service/ and tools/run.js the pod runs (the A/B bench's base revision). @default this one */
  readonly serviceRoot?: string;
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
  const standIns = (name: string, value: string) =>
    hostPorts(
      value
        .split(',')
        .filter(Boolean)
        .map((addr) => {
          const ep = wiring.services[addr];
          if (!ep) {
            throw new Error(
              `container '${container.name}' env ${name} names ${addr}, which the twin does not run ` +
                `(it runs ${Object.keys(wiring.services).join(', ')})`,
            );
          }
          return ep;
        }),
    );
  const addresses: Record<string, string> = {
    [E.port]: String(ports.http),
    [E.metricsPort]: String(ports.metrics),
    [E.redisClusterNodes]: hostPorts(wiring.redisNodes),
  };
  for (const name of [E.postgresServer, E.postgresReadReplicas]) {
    const v = (container.env ?? []).find((x) => x.name === name)?.value;
    if (v !== undefined) addresses[name] = standIns(name, v);
  }
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
  return { ...env, ...wiring.overrides };
}

/** `node dist/server.js <args>` (the image) -> `node tools/run.js service/src/server.ts <args>` (this checkout). */
export function localCommand(container: Container, root = ROOT): string[] {
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
    join(root, 'tools', 'run.js'),
    join(root, SERVICE_ENTRY),
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
  /** Milliseconds from spawning the init containers to readiness 200 (0 when not waited for). */
  readonly startMs: number;
  readonly env: Readonly<Record<string, string>>;
  /** Resolves with the exit code when the process has exited. */
  readonly exited: Promise<number | null>;
  /** The process (group) of the container. */
  readonly proc: Proc;
  log(): string;
  alive(): boolean;
  /** SIGKILL (a crashed container). */
  kill(): Promise<void>;
  /**
   * preStop, then SIGTERM, then SIGKILL once `graceSeconds` (default terminationGracePeriodSeconds)
   * have passed since the start. Resolves on exit.
   */
  terminate(graceSeconds?: number): Promise<{ exitCode: number | null; ms: number }>;
}

/** The api container of the Deployment (named 'api', else the first). */
export const apiContainer = (deployment: DeploymentLike): Container =>
  deployment.spec.template.spec.containers.find((c) => c.name === 'api') ?? deployment.spec.template.spec.containers[0];

/** Where the kubelet's probes reach a pod: its named container ports on loopback. */
export function podProbeTarget(deployment: DeploymentLike, pod: ApiPod): ProbeTarget {
  const byPort = new Map<number, Endpoint>([
    [SERVICE_PORTS.http, pod.http],
    [SERVICE_PORTS.metrics, pod.metrics],
  ]);
  const declared = apiContainer(deployment).ports ?? [];
  return {
    port(p) {
      const number = typeof p === 'number' ? p : declared.find((d) => d.name === p)?.containerPort;
      const ep = number === undefined ? undefined : byPort.get(number);
      if (!ep) throw new Error(`${pod.name}: probe port ${JSON.stringify(p)} is not a port of the api container`);
      return ep;
    },
  };
}

/** Starts one pod: init containers to completion, then the main container, then waits for readiness. */
export async function startApiPod(
  deployment: DeploymentLike,
  wiring: PodWiring,
  name: string,
  timeoutMs = 60000,
): Promise<ApiPod> {
  const t0 = Date.now();
  const pod = await launchApiPod(deployment, wiring, name);
  try {
    await waitFor(
      `${name} readiness on ${pod.http.host}:${pod.http.port}`,
      async () => (await httpStatus(pod.http, SERVICE_PATHS.readiness)) === 200,
      timeoutMs,
      pod.log,
      pod.proc,
    );
  } catch (e) {
    await pod.kill();
    throw e;
  }
  return { ...pod, startMs: Date.now() - t0 };
}

/**
 * Runs one pod's init containers to completion, then spawns its main container, and returns at
 * once (the kubelet's probes decide when it is ready). `ports` keeps a restarted container on its
 * pod's ports, as a container restart keeps the pod's IP.
 */
export async function launchApiPod(
  deployment: DeploymentLike,
  wiring: PodWiring,
  name: string,
  fixedPorts?: { http: number; metrics: number },
): Promise<ApiPod> {
  const spec = deployment.spec.template.spec;
  const main = apiContainer(deployment);
  const ports = fixedPorts ?? { http: await freePort('0.0.0.0'), metrics: await freePort('0.0.0.0') };
  for (const init of spec.initContainers ?? []) {
    const [cmd, ...args] = localCommand(init, wiring.serviceRoot);
    const r = await runToEnd(cmd, args, {
      env: { ...baseEnv(wiring.hostsFile), ...podEnv(init, wiring, ports) },
      cwd: ROOT,
    });
    if (r.code !== 0) throw new Error(`${name}: init container '${init.name}' exited ${r.code}:\n${r.output}`);
  }
  const env = podEnv(main, wiring, ports);
  const cmd = localCommand(main, wiring.serviceRoot);
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
    exited: proc.exited,
    proc,
    log: proc.log,
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    kill: () => stopGroup(proc, 'SIGKILL', 0),
    async terminate(graceSeconds = spec.terminationGracePeriodSeconds ?? 30) {
      const started = Date.now();
      const grace = graceSeconds * 1000;
      const killer = setTimeout(() => void stopGroup(proc, 'SIGKILL', 0), grace);
      const preStop = main.lifecycle?.preStop?.exec?.command;
      // The kubelet runs preStop inside the grace period; here the same command runs on the host.
      // The grace period covers preStop too: a hook still running at its end is cut short by SIGKILL.
      if (preStop?.length && grace > 0) {
        await Promise.race([runToEnd(preStop[0], preStop.slice(1), { env: baseEnv(), cwd: ROOT }), proc.exited]);
      }
      await stopGroup(proc, 'SIGTERM', Math.max(0, grace - (Date.now() - started)));
      clearTimeout(killer);
      return { exitCode: proc.child.exitCode, ms: Date.now() - started };
    },
  };
  return pod;
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
