/**
 * API pods as containers: the built image run by podman with the pod spec of the
 * synthesized Deployment, translated flag by flag (`podmanRunArgs`):
 *   runAsUser/runAsGroup/fsGroup      --user uid:gid --group-add fsGroup
 *   readOnlyRootFilesystem            --read-only --read-only-tmpfs=false (no tmpfs podman would add)
 *   capabilities.drop ALL / add       --cap-drop=all / --cap-add
 *   allowPrivilegeEscalation: false   --security-opt=no-new-privileges
 *   seccompProfile RuntimeDefault     podman's default profile
 *   emptyDir (sizeLimit)              --tmpfs <mountPath>:size=...,mode=1777,U (writable by the pod's user)
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
import { SERVICE_PATHS } from '../../../service/src/contract';
import { freePort, makeTempDir, removeDir, runToEnd, spawnServer, waitFor } from '../launcher/processes';
import { PODMAN_RUN_FLAGS, podman, podmanArgv } from '../images/podman';
import type { ApiPod, Container, DeploymentLike, PodSpecLike, PodWiring } from './api-pods';
import { apiContainer, podEnv, podProbeTarget } from './api-pods';
import { type ProbeSpec, type ProbeTarget, probeAttempt, timingsOf } from './kubelet';

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
  /**
   * Host directory of each configMap volume (mounted read-only) and of each volume claim
   * (a StatefulSet's claim template, mounted read-write), by volume name.
   */
  readonly dirs?: Readonly<Record<string, string>>;
  /** Cluster DNS names and their addresses. */
  readonly hosts: readonly (readonly [string, string])[];
  /** --rm (false keeps the stopped container for `podman diff`). */
  readonly remove: boolean;
}

/**
 * A container's env as the kubelet resolves it: literal values, `fieldRef`s from `fields`
 * (e.g. `metadata.name`, `status.podIP`), `secretKeyRef`s from `secrets` (Secret name ->
 * key -> value), then `$(VAR)` references to variables defined earlier in the list (`$$` is a `$`).
 * Throws on a source it does not have.
 */
export function resolveEnv(
  c: Container,
  fields: Readonly<Record<string, string>>,
  secrets: Readonly<Record<string, Readonly<Record<string, string>>>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of c.env ?? []) {
    const from = v.valueFrom as
      { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } } | undefined;
    let value: string | undefined;
    if (from?.fieldRef) value = fields[from.fieldRef.fieldPath];
    else if (from?.secretKeyRef) value = secrets[from.secretKeyRef.name]?.[from.secretKeyRef.key];
    else if (!from)
      value = (v.value ?? '').replace(/\$(\$|\(([A-Za-z_][A-Za-z0-9_]*)\))/g, (ref, esc: string, name?: string) =>
        esc === '$' ? '$' : (out[name!] ?? ref),
      );
    if (value === undefined) {
      throw new Error(`container '${c.name}' env ${v.name}: no value for ${JSON.stringify(v.valueFrom)}`);
    }
    out[v.name] = value;
  }
  return out;
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
      // The kubelet makes an emptyDir a fresh directory anyone may write (0777, group fsGroup),
      // whatever the image holds at that path; podman would copy the image directory's owner
      // and mode onto the tmpfs (root, 2775 for /var/run/postgresql), so it is chowned to the
      // container's user (U).
      args.push('--tmpfs', `${m.mountPath}:rw${size},mode=1777${uid !== undefined ? ',U' : ''}`);
    } else if (v?.secret) {
      const dir = run.secretDirs[m.name];
      if (!dir) throw new Error(`${where}: no directory for secret volume '${m.name}'`);
      args.push('--volume', `${dir}:${m.mountPath}:ro`);
    } else if (v?.configMap || (!v && run.dirs?.[m.name])) {
      const dir = run.dirs?.[m.name];
      if (!dir) throw new Error(`${where}: no directory for configMap volume '${m.name}'`);
      args.push('--volume', `${dir}:${m.mountPath}:${v?.configMap || m.readOnly ? 'ro' : 'rw'}`);
    } else {
      throw new Error(
        `${where}: volume '${m.name}' is not an emptyDir, secret, configMap or volume claim; not supported here`,
      );
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

/**
 * Runs `probe` the kubelet's way until it succeeds once (tools/runtime/twin/kubelet.ts
 * `probeAttempt`): every periodSeconds, each try within timeoutSeconds; fails after
 * failureThreshold consecutive failures (after initialDelaySeconds). Resolves with the
 * milliseconds it took. For a pod no kubelet manages (this file's `startContainerPod`, the
 * container test); the twin's pods are probed by their KubeletPod.
 */
export async function probeUntilSuccess(
  what: string,
  probe: ProbeSpec,
  target: ProbeTarget,
  detail: () => string,
  alive: () => boolean,
): Promise<number> {
  const t0 = Date.now();
  const t = timingsOf(probe);
  const attempt = probeAttempt(probe, target);
  await new Promise((r) => setTimeout(r, t.initialDelaySeconds * 1000));
  let last = '';
  for (let failures = 0; failures < t.failureThreshold; failures++) {
    if (!alive()) throw new Error(`${what}: the container exited\n${detail()}`);
    const tryAt = Date.now();
    const r = await attempt(t.timeoutSeconds * 1000);
    if (r.ok) return Date.now() - t0;
    last = r.detail;
    await new Promise((res) => setTimeout(res, Math.max(0, t.periodSeconds * 1000 - (Date.now() - tryAt))));
  }
  throw new Error(`${what} failed ${t.failureThreshold} times (last: ${last})\n${detail()}`);
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
 * Runs one pod from the image: init containers to completion, then the main container,
 * and returns at once (the kubelet's probes decide when it is ready). `ports` keeps a
 * restarted container on its pod's ports, as a container restart keeps the pod's IP.
 * The container and its secret directories are removed once it exits, unless `keep`.
 */
export async function launchContainerPod(
  deployment: DeploymentLike,
  wiring: PodWiring,
  name: string,
  opts: { image?: string; keep?: boolean; ports?: { http: number; metrics: number } } = {},
): Promise<ContainerPod> {
  const spec = deployment.spec.template.spec;
  const main = apiContainer(deployment);
  const image = opts.image ?? main.image;
  if (!image) throw new Error(`container '${main.name}' has no image`);
  const t0 = Date.now();
  const ports = opts.ports ?? { http: await freePort('0.0.0.0'), metrics: await freePort('0.0.0.0') };
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
  // A container that exits on its own (a crash, a liveness kill) leaves nothing behind either.
  if (!opts.keep) void proc.exited.then(remove);
  return {
    name,
    container,
    http: { host: '127.0.0.1', port: ports.http },
    metrics: { host: '127.0.0.1', port: ports.metrics },
    pid: proc.pid,
    startMs: 0,
    initMs,
    env,
    exited: proc.exited,
    proc,
    log: proc.log,
    alive,
    async kill() {
      await signal('KILL');
      await proc.exited;
      if (!opts.keep) await remove();
    },
    async terminate(graceSeconds = spec.terminationGracePeriodSeconds ?? 30) {
      const started = Date.now();
      const grace = graceSeconds * 1000;
      const killer = setTimeout(() => void signal('KILL'), grace);
      const preStop = main.lifecycle?.preStop?.exec?.command;
      // The kubelet runs preStop in the container, inside the grace period: a hook still
      // running at its end is cut short by SIGKILL.
      if (preStop?.length && grace > 0) {
        await Promise.race([podman(['exec', container, ...preStop]).catch(() => undefined), proc.exited]);
      }
      await signal('TERM');
      const exitCode = await proc.exited;
      clearTimeout(killer);
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
}

/**
 * Starts one pod from the image outside the twin's kubelet: `launchContainerPod`, then
 * the startup probe and readiness as the kubelet runs them; resolves once both passed.
 */
export async function startContainerPod(
  deployment: DeploymentLike,
  wiring: PodWiring,
  name: string,
  opts: { image?: string; keep?: boolean; timeoutMs?: number } = {},
): Promise<ContainerPod> {
  const t0 = Date.now();
  const pod = await launchContainerPod(deployment, wiring, name, opts);
  const main = apiContainer(deployment);
  const target = podProbeTarget(deployment, pod);
  try {
    if (main.startupProbe)
      await probeUntilSuccess(`${name} startup probe`, main.startupProbe, target, pod.log, pod.alive);
    const readiness = probeAttempt(
      main.readinessProbe ?? { httpGet: { path: SERVICE_PATHS.readiness, port: 'http' } },
      target,
    );
    await waitFor(
      `${name} readiness`,
      async () => (await readiness(2000)).ok,
      opts.timeoutMs ?? 60000,
      pod.log,
      pod.proc,
    );
  } catch (e) {
    await pod.kill();
    await pod.remove();
    throw e;
  }
  return { ...pod, startMs: Date.now() - t0 };
}
