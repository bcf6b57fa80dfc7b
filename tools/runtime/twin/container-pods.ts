/**
 * API pods as containers: the built image run by podman with the pod spec of the
 * synthesized Deployment, translated flag by flag (`podmanRunArgs`):
 *   runAsUser/runAsGroup/fsGroup      --user uid:gid --group-add fsGroup
 *   readOnlyRootFilesystem            --read-only --read-only-tmpfs=false (no tmpfs podman would add)
 *   capabilities.drop ALL / add       --cap-drop=all / --cap-add
 *   allowPrivilegeEscalation: false   --security-opt=no-new-privileges
 *   seccompProfile RuntimeDefault     podman's default profile
 *   emptyDir (sizeLimit)              --tmpfs <mountPath>:size=...,mode=1777
 *   secret volume                     a host directory, read-only (files 0644, group fsGroup)
 *   resources.limits                  --memory / --cpus
 *   command / args                    --entrypoint / arguments
 * Pods share the host network here (no CNI), so, as for processes, the listen ports and
 * the addresses of PostgreSQL and Redis are substituted (api-pods.ts `podEnv`), and the
 * cluster DNS names the Redis nodes announce become --add-host entries. Init containers
 * run to completion first; `terminate()` runs preStop inside the container
 * (`podman exec`), then SIGTERM, then SIGKILL at terminationGracePeriodSeconds.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SERVICE_ENV, SERVICE_PATHS } from '../../../service/src/contract';
import { freePort, makeTempDir, removeDir, runToEnd, spawnServer, waitFor } from '../launcher/processes';
import { PODMAN_RUN_FLAGS, podman, podmanArgv } from '../images/podman';
import type { ApiPod, Container, DeploymentLike, PodSpecLike, PodWiring, Probe } from './api-pods';
import { podEnv } from './api-pods';

/** Containers this process started and has not removed yet (removed at exit). */
const live = new Set<string>();
process.once('exit', () => {
  if (live.size) {
    try {
      execFileSync('podman', ['rm', '-f', '-t', '0', ...live], { stdio: 'ignore' });
    } catch {
      // Best effort at exit.
    }
  }
});

/** Bytes of a Kubernetes quantity (64Mi, 1Gi, 500M). */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (!m) throw new Error(`quantity '${q}' is not understood (e.g. 64Mi)`);
  const unit: Record<string, number> = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Math.round(Number(m[1]) * (m[2] ? unit[m[2]] : 1));
}

/** CPUs of a Kubernetes CPU quantity (500m -> 0.5). */
const cpus = (q: string) => (q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));

export interface ContainerRun {
  /** Container name (unique on the machine). */
  readonly name: string;
  readonly image: string;
  readonly env: Readonly<Record<string, string>>;
  /** Host directory of each secret volume, by volume name. */
  readonly secretDirs: Readonly<Record<string, string>>;
  /** Cluster DNS names and their addresses. */
  readonly hosts: readonly (readonly [string, string])[];
  /** --rm (false keeps the stopped container for `podman diff`). */
  readonly remove: boolean;
}

/** `podman run` arguments for container `c` of pod `spec`; throws on a field it cannot honour. */
export function podmanRunArgs(spec: PodSpecLike, c: Container, run: ContainerRun): string[] {
  const pod = spec.securityContext ?? {};
  const sc = c.securityContext ?? {};
  const uid = sc.runAsUser ?? pod.runAsUser;
  const gid = sc.runAsGroup ?? pod.runAsGroup;
  const where = `container '${c.name}'`;
  if ((sc.runAsNonRoot ?? pod.runAsNonRoot) && !uid) {
    throw new Error(`${where}: runAsNonRoot needs a numeric non-zero runAsUser (got ${uid})`);
  }
  if (sc.privileged) throw new Error(`${where}: privileged containers are not run here`);
  const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type ?? 'RuntimeDefault';
  if (seccomp !== 'RuntimeDefault')
    throw new Error(`${where}: seccompProfile ${seccomp} is not supported (RuntimeDefault)`);
  const args = ['run', '--name', run.name, ...PODMAN_RUN_FLAGS, '--pull=never'];
  if (run.remove) args.push('--rm');
  if (uid !== undefined) args.push('--user', gid !== undefined ? `${uid}:${gid}` : String(uid));
  if (pod.fsGroup !== undefined) args.push('--group-add', String(pod.fsGroup));
  if (sc.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
  for (const cap of sc.capabilities?.drop ?? []) args.push(`--cap-drop=${cap.toLowerCase()}`);
  for (const cap of sc.capabilities?.add ?? []) args.push(`--cap-add=${cap.toLowerCase()}`);
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt=no-new-privileges');
  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (v?.emptyDir) {
      const size = v.emptyDir.sizeLimit ? `,size=${quantityBytes(v.emptyDir.sizeLimit)}` : '';
      args.push('--tmpfs', `${m.mountPath}:rw${size},mode=1777`);
    } else if (v?.secret) {
      const dir = run.secretDirs[m.name];
      if (!dir) throw new Error(`${where}: no directory for secret volume '${m.name}'`);
      args.push('--volume', `${dir}:${m.mountPath}:ro`);
    } else {
      throw new Error(`${where}: volume '${m.name}' is neither an emptyDir nor a secret; not supported here`);
    }
  }
  const limits = c.resources?.limits ?? {};
  if (limits.memory) args.push('--memory', String(quantityBytes(limits.memory)));
  if (limits.cpu) args.push('--cpus', String(cpus(limits.cpu)));
  for (const [host, ip] of run.hosts) args.push('--add-host', `${host}:${ip}`);
  for (const [k, v] of Object.entries(run.env)) args.push('--env', `${k}=${v}`);
  if (c.workingDir) args.push('--workdir', c.workingDir);
  const [entry, ...rest] = c.command ?? [];
  if (entry) args.push('--entrypoint', entry);
  args.push(run.image, ...rest, ...(c.args ?? []));
  return args;
}

/**
 * One directory per secret volume the container mounts, holding the twin's secret
 * files at the paths the Deployment's *_FILE variables name (k8s defaultMode 0644,
 * group fsGroup).
 */
function secretVolumes(spec: PodSpecLike, c: Container, wiring: PodWiring, root: string): Record<string, string> {
  const dirs: Record<string, string> = {};
  const secrets = new Set((spec.volumes ?? []).filter((v) => v.secret).map((v) => v.name));
  const fsGroup = spec.securityContext?.fsGroup ?? 0;
  for (const m of (c.volumeMounts ?? []).filter((x) => secrets.has(x.name))) {
    const dir = join(root, m.name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    for (const v of c.env ?? []) {
      if (!v.name.endsWith('_FILE') || !v.value?.startsWith(`${m.mountPath}/`)) continue;
      const hostFile = wiring.secretFiles[v.name];
      if (!hostFile) throw new Error(`container '${c.name}' env ${v.name}: the twin has no secret for it`);
      const target = join(dir, relative(m.mountPath, v.value));
      mkdirSync(join(target, '..'), { recursive: true });
      writeFileSync(target, readFileSync(hostFile), { mode: 0o644 });
      chownSync(target, 0, fsGroup);
    }
    dirs[m.name] = dir;
  }
  return dirs;
}

/** The "name address" lines of the twin's DNS stand-in. */
function hostEntries(file: string): [string, string][] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p): p is [string, string] => p.length === 2 && !!p[0] && !!p[1]);
}

async function httpGetStatus(url: string, timeoutMs: number): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  return res.status;
}

/**
 * Runs `probe` the kubelet's way until it succeeds once: every periodSeconds, each try
 * within timeoutSeconds; fails after failureThreshold consecutive failures (after
 * initialDelaySeconds). Resolves with the milliseconds it took.
 */
export async function probeUntilSuccess(
  what: string,
  probe: Probe,
  url: string,
  detail: () => string,
  alive: () => boolean,
): Promise<number> {
  const t0 = Date.now();
  const period = (probe.periodSeconds ?? 10) * 1000;
  const threshold = probe.failureThreshold ?? 3;
  await new Promise((r) => setTimeout(r, (probe.initialDelaySeconds ?? 0) * 1000));
  let last = '';
  for (let failures = 0; failures < threshold; failures++) {
    if (!alive()) throw new Error(`${what}: the container exited\n${detail()}`);
    const tryAt = Date.now();
    try {
      const status = await httpGetStatus(url, (probe.timeoutSeconds ?? 1) * 1000);
      if (status >= 200 && status < 400) return Date.now() - t0;
      last = `HTTP ${status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, Math.max(0, period - (Date.now() - tryAt))));
  }
  throw new Error(`${what} failed ${threshold} times (last: ${last}) on ${url}\n${detail()}`);
}

/** The host URL of an httpGet probe of `c` (the probe's named or numbered port -> the substituted one). */
export function probeUrl(c: Container, probe: Probe, ports: { http: number; metrics: number }): string {
  if (!probe.httpGet) throw new Error(`container '${c.name}': only httpGet probes are run here`);
  const p = probe.httpGet.port;
  const containerPort = typeof p === 'number' ? p : c.ports?.find((x) => x.name === p)?.containerPort;
  const shipped = Object.fromEntries((c.env ?? []).map((v) => [v.name, v.value]));
  const port =
    String(containerPort) === shipped[SERVICE_ENV.port]
      ? ports.http
      : String(containerPort) === shipped[SERVICE_ENV.metricsPort]
        ? ports.metrics
        : undefined;
  if (port === undefined)
    throw new Error(
      `container '${c.name}': probe port ${p} is neither ${SERVICE_ENV.port} nor ${SERVICE_ENV.metricsPort}`,
    );
  return `http://127.0.0.1:${port}${probe.httpGet.path}`;
}

export interface ContainerPod extends ApiPod {
  readonly container: string;
  /** Milliseconds the init containers took. */
  readonly initMs: number;
  /** `podman diff` of the main container: what it changed outside its mounts. */
  diff(): Promise<string[]>;
  /** Removes the container (after terminate/kill of a pod started with `keep`). */
  remove(): Promise<void>;
}

/**
 * Starts one pod from the image: init containers to completion, then the main
 * container; resolves once the startup probe and then readiness have passed.
 */
export async function startContainerPod(
  deployment: DeploymentLike,
  wiring: PodWiring,
  name: string,
  opts: { image?: string; keep?: boolean; timeoutMs?: number } = {},
): Promise<ContainerPod> {
  const spec = deployment.spec.template.spec;
  const main = spec.containers.find((c) => c.name === 'api') ?? spec.containers[0];
  const image = opts.image ?? main.image;
  if (!image) throw new Error(`container '${main.name}' has no image`);
  const t0 = Date.now();
  const ports = { http: await freePort('0.0.0.0'), metrics: await freePort('0.0.0.0') };
  const hosts = hostEntries(wiring.hostsFile);
  const volumesDir = makeTempDir(`fastnext-pod-${name}-`);
  const unique = `fastnext-${process.pid}-${name}-${Date.now().toString(36)}`;
  const runOf = (c: Container, suffix: string, remove: boolean) =>
    podmanRunArgs(spec, c, {
      name: `${unique}-${suffix}`,
      image,
      env: podEnv(c, wiring, ports, true),
      secretDirs: secretVolumes(spec, c, wiring, join(volumesDir, c.name)),
      hosts,
      remove,
    });
  for (const init of spec.initContainers ?? []) {
    live.add(`${unique}-${init.name}`);
    const r = await runToEnd('podman', podmanArgv(runOf(init, init.name, true)), {
      env: { ...process.env } as Record<string, string>,
    });
    live.delete(`${unique}-${init.name}`);
    if (r.code !== 0) {
      removeDir(volumesDir);
      throw new Error(`${name}: init container '${init.name}' exited ${r.code}:\n${r.output}`);
    }
  }
  const initMs = Date.now() - t0;
  const container = `${unique}-${main.name}`;
  const env = podEnv(main, wiring, ports, true);
  live.add(container);
  const proc = spawnServer('podman', podmanArgv(runOf(main, main.name, !opts.keep)), {
    env: { ...process.env } as Record<string, string>,
    logFile: join(wiring.logDir, `${name}.log`),
  });
  const alive = () => proc.child.exitCode === null && proc.child.signalCode === null;
  const signal = async (sig: string) => {
    try {
      await podman(['kill', '--signal', sig, container]);
    } catch {
      // Already gone.
    }
  };
  const remove = async () => {
    await podman(['rm', '-f', '-t', '0', container]).catch(() => undefined);
    live.delete(container);
    removeDir(volumesDir);
  };
  const pod: ContainerPod = {
    name,
    container,
    http: { host: '127.0.0.1', port: ports.http },
    metrics: { host: '127.0.0.1', port: ports.metrics },
    pid: proc.pid,
    startMs: 0,
    initMs,
    env,
    log: proc.log,
    alive,
    async kill() {
      await signal('KILL');
      await proc.exited;
      if (!opts.keep) await remove();
    },
    async terminate() {
      const started = Date.now();
      const grace = (spec.terminationGracePeriodSeconds ?? 30) * 1000;
      const preStop = main.lifecycle?.preStop?.exec?.command;
      // The kubelet runs preStop in the container, inside the grace period.
      if (preStop?.length) await podman(['exec', container, ...preStop]).catch(() => undefined);
      await signal('TERM');
      const timer = setTimeout(() => void signal('KILL'), Math.max(0, grace - (Date.now() - started)));
      const exitCode = await proc.exited;
      clearTimeout(timer);
      const ms = Date.now() - started;
      if (!opts.keep) await remove();
      return { exitCode, ms };
    },
    async diff() {
      const out = await podman(['diff', '--format', 'json', container]);
      const d = JSON.parse(out || '{}') as Record<string, string[] | null>;
      return Object.entries(d).flatMap(([kind, paths]) => (paths ?? []).map((p) => `${kind} ${p}`));
    },
    remove,
  };
  try {
    const detail = () => proc.log();
    if (main.startupProbe)
      await probeUntilSuccess(
        `${name} startup probe`,
        main.startupProbe,
        probeUrl(main, main.startupProbe, ports),
        detail,
        alive,
      );
    await waitFor(
      `${name} readiness`,
      async () =>
        (await httpGetStatus(
          probeUrl(main, main.readinessProbe ?? { httpGet: { path: SERVICE_PATHS.readiness, port: 'http' } }, ports),
          2000,
        )) === 200,
      opts.timeoutMs ?? 60000,
      detail,
      proc,
    );
  } catch (e) {
    await signal('KILL');
    await remove();
    throw e;
  }
  return { ...pod, startMs: Date.now() - t0 };
}
