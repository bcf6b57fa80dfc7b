/**
 * Starts a real Redis 7 Cluster on loopback from the shipped files (redis.conf,
 * redis-start.sh, cluster-create.sh): one node per loopback address, stable
 * hostnames `redis-<i>.redis-headless` resolved through a hosts file (our stand-in
 * for the headless Service's DNS), then the cluster-create script as the Job runs it.
 * Each ACL user gets its own random password, in a directory laid out as the mounted Secret.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REDIS_USER_ROLES, REDIS_USERS, type RedisUserRole, redisPasswordKey } from '../../../constructs/redis/acl';
import { TLS_SECRET_KEYS, tlsSecretGeneratorScript } from '../../../constructs/core/generated-secret';
import { REDIS_BUS_PORT_OFFSET, REDIS_FILES, redisNodeCount } from '../../../constructs/redis/files';
import { writeSecretVolume } from '../secret-volume';
import * as processes from './processes';
import { type FileSource, filesFrom } from './sources';
import { issueTwinTls, twinCa } from './tls';

export interface StartRedisOptions {
  /** Masters. @default 3 */
  readonly masters?: number;
  /** Replicas per master. @default 1 */
  readonly replicasPerMaster?: number;
  /** Name of the ConfigMap holding the files. @default 'redis-config' */
  readonly configMap?: string;
  /** Milliseconds to wait for each node and for the create script. @default 120000 */
  readonly timeoutMs?: number;
  /** Directory the launcher's temp dir is created in. @default os.tmpdir() */
  readonly parentDir?: string;
  /** Seconds between the nodes' checks of the users' Secret (REDIS_USERS_SYNC_SECONDS). @default the script's */
  readonly usersSyncSeconds?: number;
  /**
   * TLS only (REDIS_TLS_DIR, as `redis.tls` sets it): the nodes get a certificate from the shipped
   * generator script, signed by the twin's CA, naming their hostnames and loopback addresses.
   * @default false
   */
  readonly tls?: boolean;
}

export interface RedisNode extends processes.Endpoint {
  /** Stable name, like the pod's DNS name. */
  readonly hostname: string;
  readonly dataDir: string;
}

/** Masters and replicas per master of the cluster the launcher runs. */
export interface RedisTopology {
  readonly masters: number;
  readonly replicasPerMaster: number;
}

/** How one `scale()` went: the reconcile script's exit code and output, and the time of each step. */
export interface ScaleResult {
  readonly code: number | null;
  readonly output: string;
  /** Milliseconds to start the new nodes (0 for a scale-in). */
  readonly startMs: number;
  /** Milliseconds the reconcile script ran. */
  readonly reconcileMs: number;
  /** Milliseconds to stop the nodes the target no longer has (0 for a scale-out, or when refused). */
  readonly stopMs: number;
}

/** One line of `cluster nodes`. */
export interface ClusterNodeView {
  readonly id: string;
  /** Flags without `myself,`: e.g. `master`, `slave`, `master,fail`. */
  readonly flags: string;
  /** Master id of a replica, `-` for a master. */
  readonly master: string;
  readonly connected: boolean;
  /** Slot ranges, space-separated ('' for none). */
  readonly slots: string;
}

export interface RedisClusterLaunch {
  /** The temp dir holding config, data and the hosts file (removed by stop()). */
  readonly dir: string;
  /** Current address of every node (changes after `restartAll(newAddresses)`). */
  readonly nodes: RedisNode[];
  /** Each ACL user's password (the Secret's `<user>-password` keys; `writeUsers` changes them). */
  readonly passwords: Readonly<Record<RedisUserRole, string>>;
  /**
   * Replaces the users' Secret with `files` (key -> password) the way the kubelet updates a
   * mounted Secret (one atomic swap). The `<user>-password` keys become `passwords`.
   */
  writeUsers(files: Readonly<Record<string, string>>): void;
  /** ioredis `username` + `password` of an ACL user (e.g. `redisOptions: redis.auth('app')`). */
  auth(role: RedisUserRole): { username: string; password: string };
  /** The directory standing in for the mounted users' Secret (one file per key). */
  readonly usersDir: string;
  /** With `tls`: the directory standing in for the TLS Secret's volume, and the CA (PEM) clients verify against. */
  readonly tls?: { readonly dir: string; readonly caFile: string; readonly ca: string };
  /** With `tls`: a new certificate and key for every node (same CA), swapped in the way the kubelet updates a Secret. */
  renewTls(): Promise<void>;
  /** Milliseconds from spawning the nodes to the create script reporting the cluster ok. */
  readonly bringUpMs: number;
  /**
   * ioredis `natMap` from the hostnames the nodes announce (redis.conf prefers hostnames,
   * which only the cluster's DNS resolves) to their current loopback address. Call it
   * again after `restartAll({ newAddresses: true })`.
   */
  natMap(): Record<string, { host: string; port: number }>;
  /** The same mapping as a function reading the nodes at each lookup: for clients that live through a `scale()`. */
  natMapFunction(): (key: string) => { host: string; port: number } | null;
  /**
   * What the headless Service's DNS answers right now, as "name address" lines: rewritten when
   * nodes are placed (start, a scale-out, `restartAll({ newAddresses: true })`) and when a
   * scale-in removes them. The twin's API pods resolve through it (tools/runtime/twin/hosts-preload.js).
   */
  readonly hostsFile: string;
  /** Current topology (changed by a successful `scale()`). */
  readonly topology: RedisTopology;
  /**
   * Changes the topology as the StatefulSet and the create Job do it: a scale-out starts the new
   * nodes (the next ordinals) from the shipped start script, then runs the shipped reconcile
   * script; a scale-in runs the script first and stops the nodes with the highest ordinals only
   * if it succeeded (a refused scale-in leaves every node running).
   */
  scale(target: { masters: number; replicasPerMaster?: number }): Promise<ScaleResult>;
  /** Runs redis-cli as `admin` against node i; resolves stdout (throws on a non-zero exit). */
  cli(i: number, ...args: string[]): Promise<string>;
  /** Runs redis-cli as another ACL user; resolves stdout and stderr (error replies included). */
  cliAs(role: RedisUserRole, i: number, ...args: string[]): Promise<string>;
  /** Runs the shipped cluster-create (reconcile) script again; resolves its exit code and output. */
  runCreate(): Promise<{ code: number | null; output: string }>;
  /** SIGKILLs node i (a crashed pod). */
  killNode(i: number): Promise<void>;
  /** Starts node i again at its current address; `wipe` empties its data dir first (a lost volume). */
  startNode(i: number, opts?: { wipe?: boolean }): Promise<void>;
  /** Stops every node, optionally moves them to new loopback addresses, starts them all again. */
  restartAll(opts?: { newAddresses?: boolean }): Promise<void>;
  log(i: number): string;
  /** `cluster nodes` as seen by node i, sorted by id. */
  clusterNodes(i: number): Promise<ClusterNodeView[]>;
  /** `cluster info` of node i as a record. */
  clusterInfo(i: number): Promise<Record<string, string>>;
  /** Every node: cluster_state ok, 16384 slots ok, every peer connected and none failing. */
  healthy(): Promise<boolean>;
  /** Node ids (`cluster myid`) in node order. */
  nodeIds(): Promise<string[]>;
  stop(): Promise<void>;
}

const REQUIRED = Object.values(REDIS_FILES);

export async function startRedisCluster(source: FileSource, opts: StartRedisOptions = {}): Promise<RedisClusterLaunch> {
  const files = filesFrom(source, opts.configMap ?? 'redis-config', REQUIRED);
  let topology: RedisTopology = { masters: opts.masters ?? 3, replicasPerMaster: opts.replicasPerMaster ?? 1 };
  const timeoutMs = opts.timeoutMs ?? 120000;
  const passwords = Object.fromEntries(
    REDIS_USER_ROLES.map((role) => [role, randomBytes(18).toString('base64url')]),
  ) as Record<RedisUserRole, string>;
  const root = processes.makeTempDir('fastnext-redis-', opts.parentDir);
  const configDir = join(root, 'config');
  processes.writeFiles(configDir, files);
  const usersDir = processes.makeDir(join(root, 'users'));
  const writeUsers = (files: Readonly<Record<string, string>>) => {
    writeSecretVolume(usersDir, files);
    for (const role of REDIS_USER_ROLES) {
      const current = files[redisPasswordKey(role)];
      if (current !== undefined) passwords[role] = current;
    }
  };
  writeUsers(Object.fromEntries(REDIS_USER_ROLES.map((role) => [redisPasswordKey(role), passwords[role]])));
  const auth = (role: RedisUserRole) => ({ username: REDIS_USERS[role], password: passwords[role] });
  const hostsFile = join(root, 'hosts');

  const nodes: RedisNode[] = [];
  // What the headless Service's DNS would answer right now.
  const writeHosts = () => writeFileSync(hostsFile, nodes.map((n) => `${n.hostname} ${n.host}\n`).join(''));
  // Node i's address is the i-th of the cluster's loopback /24 (`restartAll({ newAddresses: true })` moves
  // every node to a new one). Ports stay fixed across moves, as a container port does; only addresses
  // change. `from`: the first ordinal to place (a scale-out places the new ones next to the others).
  let net = processes.loopbackNet();
  const place = async (count: number, from = 0) => {
    const addrs = processes.loopbackAddresses(count, net);
    for (let i = from; i < count; i++) {
      const host = addrs[i];
      const port = nodes[i]?.port ?? (await processes.freePort(host, REDIS_BUS_PORT_OFFSET));
      const hostname = `redis-${i}.redis-headless`;
      nodes[i] = { host, port, hostname, dataDir: processes.makeDir(join(root, `node-${i}`, 'data')) };
      processes.makeDir(join(root, `node-${i}`, 'tmp'));
    }
    writeHosts();
  };
  await place(redisNodeCount(topology));

  // The TLS Secret's volume; the nodes read it in place, so a renewal is one atomic swap.
  const tlsDir = opts.tls ? join(root, 'tls') : undefined;
  const issueTls = async () => {
    if (!tlsDir) throw new Error('renewTls() needs a cluster started with tls: true');
    const issued = await issueTwinTls(tlsSecretGeneratorScript(), {
      dir: processes.makeDir(join(root, `tls-issue-${randomBytes(4).toString('hex')}`)),
      dnsNames: nodes.map((n) => n.hostname),
      ipAddresses: nodes.map((n) => n.host),
      ca: await twinCa(),
    });
    writeSecretVolume(tlsDir, {
      [TLS_SECRET_KEYS.cert]: issued.cert,
      [TLS_SECRET_KEYS.key]: readFileSync(issued.keyFile, 'utf8'),
      [TLS_SECRET_KEYS.ca]: issued.ca,
    });
    processes.removeDir(issued.dir);
  };
  if (tlsDir) await issueTls();
  const tls = tlsDir
    ? {
        dir: tlsDir,
        caFile: join(tlsDir, TLS_SECRET_KEYS.ca),
        ca: readFileSync(join(tlsDir, TLS_SECRET_KEYS.ca), 'utf8'),
      }
    : undefined;
  const tlsCli = tls ? ['--tls', '--cacert', tls.caFile] : [];
  const tlsEnv: Record<string, string> = tls ? { REDIS_TLS_DIR: tls.dir } : {};

  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', REDIS_HOSTS_FILE: hostsFile };
  const procs: (processes.Proc | undefined)[] = nodes.map(() => undefined);
  const runCli = (role: RedisUserRole, i: number, args: string[]) => {
    const n = nodes[i];
    return processes.runToEnd(
      'redis-cli',
      [...tlsCli, '-h', n.host, '-p', String(n.port), '--user', REDIS_USERS[role], '--no-auth-warning', ...args],
      { env: { ...baseEnv, REDISCLI_AUTH: passwords[role] } },
    );
  };
  const cli = async (i: number, ...args: string[]) => {
    const r = await runCli('admin', i, args);
    if (r.code !== 0) throw new Error(`redis-cli ${args.join(' ')} on node ${i} exited ${r.code}: ${r.output}`);
    return r.output;
  };
  const startNode = async (i: number, o: { wipe?: boolean } = {}) => {
    const n = nodes[i];
    if (o.wipe) {
      if (procs[i]) throw new Error(`node ${i} is running: kill it before wiping its data`);
      rmSync(n.dataDir, { recursive: true, force: true });
      processes.makeDir(n.dataDir);
    }
    const p = processes.spawnServer('sh', [join(configDir, REDIS_FILES.start)], {
      env: {
        ...baseEnv,
        TMPDIR: join(root, `node-${i}`, 'tmp'),
        REDIS_USERS_DIR: usersDir,
        REDIS_HOSTNAME: n.hostname,
        REDIS_PORT: String(n.port),
        REDIS_DATA_DIR: n.dataDir,
        REDIS_CONFIG_DIR: configDir,
        REDIS_BIND: n.host,
        REDIS_ANNOUNCE_IP: n.host,
        ...tlsEnv,
        ...(opts.usersSyncSeconds !== undefined ? { REDIS_USERS_SYNC_SECONDS: String(opts.usersSyncSeconds) } : {}),
      },
      cwd: n.dataDir,
      logFile: join(root, `node-${i}`, 'redis.log'),
    });
    procs[i] = p;
    await processes.waitFor(
      `redis node ${i} at ${n.host}:${n.port}`,
      async () => (await cli(i, 'ping')).trim() === 'PONG',
      timeoutMs,
      p.log,
      p,
    );
  };
  // The Job's env (redis-cluster.ts): the target's nodes in ordinal order, masters, replicas per master.
  const runReconcile = (t: RedisTopology) =>
    processes.runToEnd('sh', [join(configDir, REDIS_FILES.clusterCreate)], {
      env: {
        ...baseEnv,
        REDIS_ADMIN_PASSWORD: passwords.admin,
        REDIS_NODES: nodes
          .slice(0, redisNodeCount(t))
          .map((n) => `${n.hostname}:${n.port}`)
          .join(' '),
        REDIS_MASTERS: String(t.masters),
        REDIS_REPLICAS_PER_MASTER: String(t.replicasPerMaster),
        REDIS_WAIT_SECONDS: String(Math.ceil(timeoutMs / 1000)),
        ...tlsEnv,
      },
    });
  const runCreate = () => runReconcile(topology);
  const stopNode = async (i: number, signal: NodeJS.Signals) => {
    const p = procs[i];
    procs[i] = undefined;
    if (p) await processes.stopGroup(p, signal, 10000);
  };

  const clusterNodes = async (i: number): Promise<ClusterNodeView[]> =>
    (await cli(i, 'cluster', 'nodes'))
      .trim()
      .split('\n')
      .map((line) => {
        const f = line.trim().split(' ');
        return {
          id: f[0],
          flags: f[2].replace('myself,', ''),
          master: f[3],
          connected: f[7] === 'connected',
          slots: f.slice(8).join(' '),
        };
      })
      .sort((a, b) => a.id.localeCompare(b.id));
  const clusterInfo = async (i: number): Promise<Record<string, string>> =>
    Object.fromEntries(
      (await cli(i, 'cluster', 'info'))
        .trim()
        .split('\n')
        .map((l) => l.trim().split(':') as [string, string]),
    );
  const healthy = async () => {
    for (let i = 0; i < nodes.length; i++) {
      if (!procs[i]) return false;
      const info = await clusterInfo(i);
      if (info.cluster_state !== 'ok' || info.cluster_slots_ok !== '16384') return false;
      if ((await clusterNodes(i)).some((n) => !n.connected || n.flags.includes('fail'))) return false;
    }
    return true;
  };

  // Always a 40-hex id: anything else is retried briefly, then reported with the reply.
  const nodeId = async (i: number): Promise<string> => {
    let out = '';
    await processes.waitFor(
      `cluster myid of node ${i}`,
      async () => /^[0-9a-f]{40}$/.test((out = (await cli(i, 'cluster', 'myid')).trim())),
      10000,
      () => `last reply: ${JSON.stringify(out)}`,
    );
    return out;
  };

  const scale = async (t: { masters: number; replicasPerMaster?: number }): Promise<ScaleResult> => {
    const target = { masters: t.masters, replicasPerMaster: t.replicasPerMaster ?? topology.replicasPerMaster };
    const before = nodes.length;
    const after = redisNodeCount(target);
    let startMs = 0;
    let stopMs = 0;
    if (after > before) {
      // The StatefulSet grows: new pods at the next ordinals (their DNS names resolve), a certificate naming them.
      const t0 = Date.now();
      await place(after, before);
      for (let i = before; i < after; i++) procs[i] = undefined;
      if (tlsDir) await issueTls();
      await Promise.all(nodes.slice(before).map((_, k) => startNode(before + k)));
      startMs = Date.now() - t0;
    }
    const t1 = Date.now();
    const r = await runReconcile(target);
    const reconcileMs = Date.now() - t1;
    if (r.code === 0) {
      topology = target;
      if (after < before) {
        // Only now may the StatefulSet shrink: the highest ordinals go.
        const t2 = Date.now();
        await Promise.all(nodes.slice(after).map((_, k) => stopNode(after + k, 'SIGTERM')));
        nodes.splice(after);
        procs.splice(after);
        writeHosts();
        stopMs = Date.now() - t2;
      }
    }
    return { ...r, startMs, reconcileMs, stopMs };
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(nodes.map((_, i) => stopNode(i, 'SIGTERM')));
    processes.removeDir(root);
  };

  const bringUpMs = await processes.bringUp(async () => {
    await Promise.all(nodes.map((_, i) => startNode(i)));
    const r = await runCreate();
    if (r.code !== 0) throw new Error(`cluster-create.sh exited ${r.code}:\n${r.output}`);
  }, stop);

  return {
    dir: root,
    nodes,
    passwords,
    auth,
    usersDir,
    writeUsers,
    bringUpMs,
    hostsFile,
    natMap: () => Object.fromEntries(nodes.map((n) => [`${n.hostname}:${n.port}`, { host: n.host, port: n.port }])),
    natMapFunction: () => (key) => {
      const n = nodes.find((m) => `${m.hostname}:${m.port}` === key);
      return n ? { host: n.host, port: n.port } : null;
    },
    get topology() {
      return topology;
    },
    scale,
    cli,
    cliAs: async (role, i, ...args) => (await runCli(role, i, args)).output,
    runCreate,
    killNode: (i) => stopNode(i, 'SIGKILL'),
    startNode,
    tls,
    renewTls: issueTls,
    restartAll: async (o = {}) => {
      await Promise.all(nodes.map((_, i) => stopNode(i, 'SIGTERM')));
      if (o.newAddresses) {
        net = processes.loopbackNet();
        await place(nodes.length);
        // The certificate names the addresses: new ones need a new certificate.
        if (tlsDir) await issueTls();
      }
      await Promise.all(nodes.map((_, i) => startNode(i)));
    },
    log: (i) => procs[i]?.log() ?? '',
    clusterNodes,
    clusterInfo,
    healthy,
    nodeIds: () => Promise.all(nodes.map((_, i) => nodeId(i))),
    stop,
  };
}
