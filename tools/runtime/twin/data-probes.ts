/**
 * The kubelet for the data tier the twin runs as processes: every Patroni member,
 * PgBouncer pod and Redis node gets its pod spec's startup, readiness and liveness
 * probes (tools/runtime/twin/kubelet.ts), with the manifest's timings:
 *
 *   Patroni member  StatefulSet `postgres`, container `patroni`: httpGet /liveness and
 *                   /readiness on the `patroni` port -> the member's REST API
 *   PgBouncer pod   Deployments `pgbouncer`, `pgbouncer-readonly`, container `pgbouncer`:
 *                   tcpSocket on `pgbouncer` -> the pod's listen address; exec
 *                   `kill -0 1` -> the pod's PgBouncer process id (its pid 1)
 *   Redis node      StatefulSet `redis`, container `redis`: exec `redis-cli -h .. -p ..`
 *                   -> the node's loopback address
 *
 * A liveness (or startup) failure restarts the process through the launcher, with the
 * kubelet's back-off: Patroni is stopped with SIGTERM (it hands leadership over), PgBouncer
 * and Redis are killed. Everything about the data tier's probes is in this file, so a
 * change of the data tier's pod specs changes only this.
 *
 * Differences from a cluster, on purpose: the launcher has already started each server
 * (the first "container" is the one running); a server that exits on its own is noticed
 * by its liveness probe, not by its exit (the launchers do not expose exits); and
 * readiness is recorded (events, `ready`) but no Service follows it: the Service
 * stand-ins (tools/runtime/launcher/service-proxy.ts) poll what those Services select
 * themselves (Patroni's GET /primary and /replica, PgBouncer's open port).
 */
import type { KubeObject } from '../../k8s/objects';
import type { PatroniLaunch } from '../launcher/patroni';
import type { PgBouncerLaunch } from '../launcher/pgbouncer';
import type { Endpoint } from '../launcher/processes';
import type { RedisClusterLaunch } from '../launcher/redis';
import { type Container, KubeletPod, type ProbeSpec, type ProbeTarget, probeAttempt } from './kubelet';

interface ProbedContainer {
  readonly name: string;
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  readonly startupProbe?: ProbeSpec;
  readonly readinessProbe?: ProbeSpec;
  readonly livenessProbe?: ProbeSpec;
}

/** The named container of a workload's pod template, and the pod's grace period. */
function podContainer(objects: readonly KubeObject[], kind: string, name: string, container: string) {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  const spec = o?.spec as
    { template: { spec: { containers: ProbedContainer[]; terminationGracePeriodSeconds?: number } } } | undefined;
  const c = spec?.template.spec.containers.find((x) => x.name === container);
  if (!spec || !c) throw new Error(`the synthesized objects have no ${kind} '${name}' with a container '${container}'`);
  return { container: c, grace: spec.template.spec.terminationGracePeriodSeconds ?? 30 };
}

/** `-h <x>` and `-p <n>` in an exec probe's command (argv or a `sh -c` string) -> the server's address. */
export function localExecCommand(command: readonly string[], at: Endpoint): string[] {
  return command.map((arg, i) => {
    if (command[i - 1] === '-h') return at.host;
    if (command[i - 1] === '-p') return String(at.port);
    return arg.replace(/-h \S+ -p \d+/g, `-h ${at.host} -p ${at.port}`);
  });
}

/** `kill -0 1` (is the container's pid 1 alive?) -> the same question about `pid` on the host. */
export function localPidCommand(command: readonly string[], pid: number | undefined): string[] {
  // No process: a pid that cannot exist, so the probe fails as it would in the pod.
  return command.map((arg) => arg.replace(/\bkill -0 1\b/g, `kill -0 ${pid ?? 2 ** 22 + 1}`));
}

/**
 * An exec probe of the Patroni container, run on the host: the shipped script from the launcher's
 * copy of the ConfigMap, Patroni's loopback REST URL -> this member's, its state file in the member's
 * own directory (the pod's /tmp).
 */
export function patroniExec(
  command: readonly string[],
  postgres: PatroniLaunch,
  i: number,
): { command: string[]; env: Record<string, string> } {
  const rest = postgres.members[i].rest;
  return {
    command: command.map((arg) =>
      arg
        .replace(/^\/etc\/patroni\//, `${postgres.configDir}/`)
        .replace(/^http:\/\/127\.0\.0\.1:\d+$/, `http://${rest.host}:${rest.port}`),
    ),
    env: { LIVENESS_STATE_FILE: `${postgres.dir}/member-${i}/tmp/liveness.json` },
  };
}

/**
 * A data-tier pod under the kubelet. Its "container" is the launcher's process: already
 * running at first, stopped and started again through the launcher when a probe says so.
 */
function dataPod(o: {
  name: string;
  container: ProbedContainer;
  grace: number;
  target: ProbeTarget;
  stop: () => Promise<void>;
  start: () => Promise<void>;
  log?: (line: string) => void;
}): KubeletPod<Container> {
  let first = true;
  return new KubeletPod<Container>({
    name: o.name,
    probes: {
      startup: o.container.startupProbe,
      readiness: o.container.readinessProbe,
      liveness: o.container.livenessProbe,
    },
    terminationGracePeriodSeconds: o.grace,
    attempt: (spec) => probeAttempt(spec, o.target),
    async start() {
      if (!first) await o.start();
      first = false;
      let exit!: () => void;
      const exited = new Promise<void>((r) => (exit = r));
      return {
        pid: 0,
        exited,
        kill: async () => {
          await o.stop();
          exit();
        },
      };
    },
    log: o.log,
  });
}

/** A named port of `c` -> where it listens here; throws on a port the container does not declare. */
const portsOf =
  (c: ProbedContainer, pod: string, where: Readonly<Record<string, Endpoint>>) =>
  (p: number | string): Endpoint => {
    const name = typeof p === 'string' ? p : c.ports?.find((x) => x.containerPort === p)?.name;
    const ep = name === undefined ? undefined : where[name];
    if (!ep) throw new Error(`${pod}: probe port ${JSON.stringify(p)} is not a port of container '${c.name}'`);
    return ep;
  };

/** Kubelet pods for the Patroni members, probing as the StatefulSet's pod spec says. */
export function patroniPods(
  objects: readonly KubeObject[],
  postgres: PatroniLaunch,
  log?: (line: string) => void,
): KubeletPod<Container>[] {
  const patroni = podContainer(objects, 'StatefulSet', 'postgres', 'patroni');
  return postgres.members.map((m, i) =>
    dataPod({
      name: m.name,
      ...patroni,
      target: {
        port: portsOf(patroni.container, m.name, { patroni: m.rest, postgres: m }),
        exec: (command) => patroniExec(command, postgres, i),
      },
      // SIGTERM: Patroni stops PostgreSQL and hands leadership over, as on a container kill.
      stop: async () => {
        if (postgres.running(i)) await postgres.stopMember(i);
      },
      start: async () => {
        if (!postgres.running(i)) await postgres.startMember(i);
      },
      log,
    }),
  );
}

/**
 * Kubelet pods for every Patroni member, every PgBouncer pod and every Redis node, probing as
 * their pod specs say.
 */
export function dataTierPods(
  objects: readonly KubeObject[],
  data: {
    readonly postgres: PatroniLaunch;
    readonly poolers: readonly PgBouncerLaunch[];
    readonly redis: RedisClusterLaunch;
  },
  log?: (line: string) => void,
): KubeletPod<Container>[] {
  const { postgres, poolers, redis } = data;
  const node = podContainer(objects, 'StatefulSet', 'redis', 'redis');
  return [
    ...patroniPods(objects, postgres, log),
    ...poolers.flatMap((pool) => {
      const bouncer = podContainer(objects, 'Deployment', pool.proxy.name, 'pgbouncer');
      return pool.pods.map((p, i) =>
        dataPod({
          name: p.name,
          ...bouncer,
          target: {
            port: portsOf(bouncer.container, p.name, { pgbouncer: p }),
            exec: (command) => ({ command: localPidCommand(command, pool.pid(i)) }),
          },
          stop: () => pool.killPod(i),
          start: async () => {
            if (pool.pid(i) === undefined) await pool.startPod(i);
          },
          log,
        }),
      );
    }),
    ...redis.nodes.map((_, i) =>
      dataPod({
        name: `redis-${i}`,
        ...node,
        target: {
          port: () => redis.nodes[i],
          exec: (command) => ({
            command: localExecCommand(command, redis.nodes[i]),
            // The probe reads the exporter's password from the users' Secret, as in the pod.
            env: { REDIS_USERS_DIR: redis.usersDir },
          }),
        },
        stop: () => redis.killNode(i),
        start: () => redis.startNode(i),
        log,
      }),
    ),
  ];
}
