/**
 * Starts a real PostgreSQL 15 primary and N streaming replicas on loopback from the
 * shipped files (postgresql.conf, pg_hba.conf, primary-start.sh, primary-init.sh,
 * replica-start.sh), run as the `postgres` OS user. Only addresses, ports and paths
 * are substituted, through the environment variables the scripts document.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { POSTGRES_FILES, SUPERUSER } from '../../../constructs/postgres/files';
import {
  type Endpoint,
  type Proc,
  chownTree,
  freePort,
  loopbackAddresses,
  makeDir,
  makeTempDir,
  osUser,
  removeDir,
  spawnServer,
  stopGroup,
  waitFor,
  writeFiles,
} from './processes';
import { type FileSource, envOf, filesFrom } from './sources';

export interface StartPostgresOptions {
  /** Streaming replicas to start. @default 2 */
  readonly replicas?: number;
  /** Application database. @default from the primary StatefulSet's POSTGRES_DB, else 'fastnext' */
  readonly database?: string;
  /** Application role. @default from the primary StatefulSet's POSTGRES_USER, else 'fastnext' */
  readonly user?: string;
  /** Name of the ConfigMap holding the files. @default 'postgres-config' */
  readonly configMap?: string;
  /** Milliseconds to wait for each server. @default 120000 */
  readonly timeoutMs?: number;
  /** Directory the launcher's temp dir is created in. @default os.tmpdir() */
  readonly parentDir?: string;
}

export interface PostgresReplica extends Endpoint {
  /** Pod name the replica plays (its slot is this with '-' -> '_'). */
  readonly podName: string;
  readonly slot: string;
  readonly dataDir: string;
}

export interface PostgresLaunch {
  /** The temp dir holding config, data and sockets (removed by stop()). */
  readonly dir: string;
  readonly primary: Endpoint;
  readonly replicas: PostgresReplica[];
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly superuser: { readonly user: string; readonly password: string };
  readonly replicationPassword: string;
  /** Milliseconds from spawn to every server accepting connections and replicas streaming. */
  readonly bringUpMs: number;
  /** node-postgres config for the application role on `ep` (default the primary). */
  clientConfig(ep?: Endpoint, as?: 'app' | 'superuser'): ClientConfig;
  /** Connects a `pg` Client (caller ends it). */
  connect(ep?: Endpoint, as?: 'app' | 'superuser'): Promise<Client>;
  /** Runs one query as the superuser and returns its rows. */
  query<T = Record<string, unknown>>(ep: Endpoint, sql: string, params?: unknown[]): Promise<T[]>;
  /** Fast shutdown of replica i (its data directory stays). */
  stopReplica(i: number): Promise<void>;
  /** Starts replica i again; `wipe` empties its data directory first (a lost volume). */
  startReplica(i: number, opts?: { wipe?: boolean }): Promise<void>;
  restartPrimary(): Promise<void>;
  /** Runs the shipped primary-init.sh again against the running primary (it must be idempotent). */
  rerunPrimaryInit(): Promise<{ code: number | null; output: string }>;
  /** Log of a server ('primary' or a replica index). */
  log(which: 'primary' | number): string;
  /** Stops every server and removes every directory. Idempotent. */
  stop(): Promise<void>;
}

const REQUIRED = Object.values(POSTGRES_FILES);

export async function startPostgres(source: FileSource, opts: StartPostgresOptions = {}): Promise<PostgresLaunch> {
  const files = filesFrom(source, opts.configMap ?? 'postgres-config', REQUIRED);
  const nReplicas = opts.replicas ?? 2;
  const timeoutMs = opts.timeoutMs ?? 120000;
  const database = opts.database ?? envOf(source, 'postgres-primary', 'POSTGRES_DB') ?? 'fastnext';
  const user = opts.user ?? envOf(source, 'postgres-primary', 'POSTGRES_USER') ?? 'fastnext';
  const pgUser = osUser('postgres');
  const secret = () => randomBytes(18).toString('base64url');
  const password = secret();
  const replicationPassword = secret();
  const superPassword = secret();

  const root = makeTempDir('fastnext-pg-', opts.parentDir);
  const configDir = join(root, 'config');
  writeFiles(configDir, files);
  const [primaryHost, ...replicaHosts] = loopbackAddresses(1 + nReplicas);
  const primary: Endpoint = { host: primaryHost, port: await freePort(primaryHost) };
  const replicas: PostgresReplica[] = [];
  for (let i = 0; i < nReplicas; i++) {
    const podName = `postgres-replica-${i}`;
    const host = replicaHosts[i];
    replicas.push({ podName, slot: podName.replace(/-/g, '_'), host, port: await freePort(host), dataDir: '' });
  }
  chownTree(root, pgUser.uid, pgUser.gid);

  const nodeDir = (name: string) => {
    const d = join(root, name);
    for (const sub of ['', 'data', 'run', 'tmp']) makeDir(join(d, sub), pgUser);
    return d;
  };
  const baseEnv = (dir: string, ep: Endpoint): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    LANG: 'C.UTF-8',
    PGDATA: join(dir, 'data', 'pgdata'),
    PG_CONFIG_DIR: configDir,
    PGPORT: String(ep.port),
    PG_SOCKET_DIR: join(dir, 'run'),
    PG_LISTEN_ADDRESSES: ep.host,
    TMPDIR: join(dir, 'tmp'),
  });
  let runs = 0;
  // One log file per run (as each container start has its own log).
  const run = (script: string, env: Record<string, string>) =>
    spawnServer('sh', [join(configDir, script)], {
      env,
      uid: pgUser.uid,
      gid: pgUser.gid,
      cwd: env.HOME,
      logFile: join(env.HOME, `${script}.${runs++}.log`),
    });

  const primaryDir = nodeDir('primary');
  const primaryEnv = {
    ...baseEnv(primaryDir, primary),
    POSTGRES_USER: user,
    POSTGRES_DB: database,
    POSTGRES_PASSWORD: password,
    REPLICATION_PASSWORD: replicationPassword,
    POSTGRES_SUPERUSER_PASSWORD: superPassword,
  };
  const replicaEnv = replicas.map((r, i) => {
    const dir = nodeDir(`replica-${i}`);
    (r as { dataDir: string }).dataDir = join(dir, 'data', 'pgdata');
    return {
      ...baseEnv(dir, r),
      PRIMARY_HOST: primary.host,
      PRIMARY_PORT: String(primary.port),
      REPLICATION_PASSWORD: replicationPassword,
      POD_NAME: r.podName,
    };
  });

  const clientConfig = (ep: Endpoint = primary, as: 'app' | 'superuser' = 'app'): ClientConfig => ({
    host: ep.host,
    port: ep.port,
    database,
    user: as === 'app' ? user : SUPERUSER,
    password: as === 'app' ? password : superPassword,
    connectionTimeoutMillis: 5000,
  });
  const connect = async (ep?: Endpoint, as?: 'app' | 'superuser') => {
    const c = new Client(clientConfig(ep, as));
    await c.connect();
    return c;
  };
  const query = async <T>(ep: Endpoint, sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = await connect(ep, 'superuser');
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end();
    }
  };
  const accepting = async (ep: Endpoint) => (await query<{ ok: number }>(ep, 'SELECT 1 AS ok'))[0].ok === 1;
  const streaming = async (slot: string) =>
    (
      await query<{ n: string }>(
        primary,
        `SELECT count(*) AS n FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
          WHERE s.slot_name = $1 AND r.state = 'streaming'`,
        [slot],
      )
    )[0].n === '1';

  let primaryProc: Proc | undefined;
  const replicaProcs: (Proc | undefined)[] = replicas.map(() => undefined);
  const startPrimary = async () => {
    const p = run(POSTGRES_FILES.primaryStart, primaryEnv);
    primaryProc = p;
    await waitFor(`primary ${primary.host}:${primary.port}`, () => accepting(primary), timeoutMs, p.log, p);
  };
  const startReplica = async (i: number, o: { wipe?: boolean } = {}) => {
    const r = replicas[i];
    if (!r) throw new Error(`replica ${i} does not exist (replicas: ${replicas.length})`);
    if (o.wipe) {
      removeDir(r.dataDir);
      makeDir(join(r.dataDir, '..'), pgUser);
    }
    const p = run(POSTGRES_FILES.replicaStart, replicaEnv[i]);
    replicaProcs[i] = p;
    await waitFor(
      `replica ${r.podName} streaming`,
      async () => (await accepting(r)) && streaming(r.slot),
      timeoutMs,
      p.log,
      p,
    );
  };
  const stopProc = async (p: Proc | undefined) => {
    // SIGINT = PostgreSQL's fast shutdown.
    if (p) await stopGroup(p, 'SIGINT', 15000);
  };

  const t0 = Date.now();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(replicaProcs.map(stopProc));
    await stopProc(primaryProc);
    removeDir(root);
  };
  try {
    await startPrimary();
    await Promise.all(replicas.map((_, i) => startReplica(i)));
  } catch (e) {
    await stop();
    throw e;
  }
  const bringUpMs = Date.now() - t0;

  return {
    dir: root,
    primary,
    replicas,
    database,
    user,
    password,
    superuser: { user: SUPERUSER, password: superPassword },
    replicationPassword,
    bringUpMs,
    clientConfig,
    connect,
    query,
    stopReplica: async (i) => {
      await stopProc(replicaProcs[i]);
      replicaProcs[i] = undefined;
    },
    startReplica,
    rerunPrimaryInit: async () => {
      const p = run(POSTGRES_FILES.primaryInit, primaryEnv);
      const code = await p.exited;
      await p.closed;
      return { code, output: p.log() };
    },
    restartPrimary: async () => {
      await stopProc(primaryProc);
      await startPrimary();
    },
    log: (which) => (which === 'primary' ? primaryProc?.log() : replicaProcs[which]?.log()) ?? '',
    stop,
  };
}
