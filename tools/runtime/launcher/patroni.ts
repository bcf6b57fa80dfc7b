/**
 * Starts a Patroni-managed PostgreSQL 15 cluster on loopback from the shipped
 * `postgres-files` ConfigMap (patroni.yml + post-bootstrap.sh), with Debian's patroni 3.0.2.
 *
 * What differs from the cluster, and only that (`twinPatroniConfig`, pinned by a test):
 * - the DCS: the `kubernetes` section is replaced by `etcd3` (one etcd from Debian's
 *   etcd-server; there is no API server here). etcd rather than Patroni's raft: etcd3 is the
 *   DCS most Patroni deployments outside Kubernetes run, its leader key has the same TTL
 *   semantics as the Kubernetes ConfigMap lock, and it needs no DCS port per member;
 * - addresses: member name, listen and connect addresses (PATRONI_* env, as the pod's env does);
 * - paths: data directory, socket directory, pgpass file, and the config dir in post_bootstrap.
 *
 * The primary Service (which selects Patroni's role label) is stood in for by a
 * `ServiceProxy` whose only ready endpoint is the member answering 200 on `GET /primary`
 * (Patroni relabels its pod in the same HA loop that changes its role); the read-only
 * Service by one over the members answering `GET /replica`.
 */
import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { parse, stringify } from 'yaml';
import {
  PATRONI_CREDENTIAL_FILES,
  PATRONI_FILES,
  PATRONI_START_ENV,
  PGBACKREST_METHOD,
} from '../../../constructs/postgres/patroni-files';
import { PGBACKREST_ENV, PGBACKREST_FILES } from '../../../constructs/postgres/pgbackrest-files';
import { tlsSecretGeneratorScript } from '../../../constructs/core/generated-secret';
import { issueTwinTls, twinCa, type TwinCa, type TwinTls } from './tls';
import { parsePgBackRestConf, twinPgBackRestConf } from './pgbackrest';
import * as processes from './processes';
import { writeSecretVolume } from '../secret-volume';
import { httpGet, type ProxyEndpoint, ServiceProxy } from './service-proxy';
import { type FileSource, envOf, filesFrom } from './sources';
import type { KubeObject } from '../../k8s/objects';

/** The parts of a Job's container the twin runs. */
interface JobContainer {
  readonly command: readonly string[];
  readonly env: readonly { readonly name: string; readonly value?: string }[];
}

export interface StartPatroniOptions {
  /** Members (1 leader + replicas). @default 3 */
  readonly members?: number;
  /** @default from the StatefulSet's POSTGRES_DB, else 'fastnext' */
  readonly database?: string;
  /** @default from the StatefulSet's POSTGRES_USER, else 'fastnext' */
  readonly user?: string;
  /** @default 'postgres-files' */
  readonly configMap?: string;
  /** Name of the StatefulSet whose pods the members play. @default 'postgres' */
  readonly statefulSet?: string;
  /** @default 180000 */
  readonly timeoutMs?: number;
  readonly parentDir?: string;
  /**
   * When the ConfigMap ships pgbackrest.conf: the posix directory standing in for the repository
   * (another cluster's, to restore from it) and its cipher pass. @default a new directory under the launch's
   */
  readonly backup?: { readonly repositoryDir: string; readonly cipherPass: string };
  /** When the shipped files turn TLS on: the CA the twin's certificate is signed by. @default the process's twin CA */
  readonly ca?: TwinCa;
}

/** pgBackRest on the twin: the shared repository directory and what a pod's env would hold. */
export interface TwinBackup {
  readonly repositoryDir: string;
  readonly cipherPass: string;
  readonly stanza: string;
  /** Whether the shipped config encrypts the repository. */
  readonly encrypted: boolean;
}

export interface PatroniMember extends processes.Endpoint {
  /** Pod name the member plays (`postgres-0`...). */
  readonly name: string;
  readonly rest: processes.Endpoint;
  readonly dataDir: string;
}

export interface MemberState {
  readonly name: string;
  readonly role: string;
  readonly state: string;
  readonly timeline?: number;
  readonly lag?: number | string;
}

export interface PatroniLaunch {
  readonly dir: string;
  /** Where the shipped ConfigMap's files are (the pods' /etc/patroni). */
  readonly configDir: string;
  /** The stand-in for the primary Service: always routes new connections to the leader. */
  readonly primary: processes.Endpoint;
  /** The stand-in for the read-only Service: round robin over the running replicas. */
  readonly readOnly: processes.Endpoint;
  readonly primaryService: ServiceProxy<PatroniMember>;
  readonly members: readonly PatroniMember[];
  /** The members that were replicas when the cluster came up (the bootstrap leader is members[0]). */
  readonly replicas: readonly PatroniMember[];
  readonly etcd: processes.Endpoint;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly superuser: { readonly user: string; readonly password: string };
  /** The exporter's role (the user of the StatefulSet's DATA_SOURCE_NAME) and its password, as its Secret holds it now. */
  readonly exporter: { readonly user: string; readonly password: string };
  /**
   * The exporter sidecar's env as member i's pod has it: the shipped DATA_SOURCE_NAME with the member's
   * address for 127.0.0.1:5432, and PGPASSFILE naming the passfile member i's entry point writes.
   */
  exporterEnv(i: number): { DATA_SOURCE_NAME: string; PGPASSFILE: string };
  /** The migration role (the StatefulSet's POSTGRES_MIGRATION_USER: it owns the schema) and its password. */
  readonly migration: { readonly user: string; readonly password: string };
  readonly replicationPassword: string;
  /** The application's second login's password (`alternate-password`), as its Secret would hold it at first. */
  readonly alternatePassword: string;
  /**
   * Changes the superuser's or the replication (and rewind) password in every member's credentials volume,
   * as the kubelet updates a mounted Secret: each member's shipped entry point (patroni-start.sh) sees
   * the files change and reloads its Patroni. The launch's own clients use them too. `exporterPassword`:
   * the exporter's Secret, whose file the entry point turns into the exporter sidecar's passfile.
   */
  setMemberSecrets(s: { superuserPassword?: string; replicationPassword?: string; exporterPassword?: string }): void;
  readonly bringUpMs: number;
  /** The patroni.yml each member runs (after the twin's substitutions). */
  readonly memberConfig: readonly string[];
  /** pgBackRest, when the ConfigMap ships it. */
  readonly backup?: TwinBackup;
  /** TLS, when the shipped files turn it on: the Secret volume's stand-in every member reads (and clients' CA). */
  readonly tls?: TwinTls;
  /**
   * Replaces the certificate in place, as kubelet does when a renewed Secret arrives (the shipped
   * generator signs a new one for the same names; `ca` another CA). The tls-reload loops pick it up.
   */
  reissueTls(ca?: TwinCa): Promise<TwinTls>;
  /** Runs `pgbackrest <args>` on member i as its container would (postgres user, the pod's PGBACKREST_* env). */
  pgbackrest(i: number, ...args: string[]): Promise<{ code: number | null; output: string }>;
  /**
   * Runs a shipped file of `postgres-files` on member i as `kubectl exec <pod> -c patroni -- sh <file> <args>`
   * would: the postgres user, the pod's env.
   */
  execShipped(i: number, file: string, ...args: string[]): Promise<{ code: number | null; output: string }>;
  /** libpq connection string for member i's superuser over its Unix socket (what Patroni passes post_bootstrap). */
  socketDsn(i: number): string;
  /** Runs the shipped backup.sh on member i, as the backup CronJob's `kubectl exec` does. */
  runBackup(i: number, type: 'full' | 'diff' | 'incr'): Promise<{ code: number | null; output: string }>;
  clientConfig(ep?: processes.Endpoint, as?: LoginRole): ClientConfig;
  connect(ep?: processes.Endpoint, as?: LoginRole): Promise<Client>;
  /**
   * Runs the roles Job of `source` (default: the objects the cluster was started from) against the
   * primary as the Job does: its command on the shipped roles.sh, its env with the Secrets' values,
   * the primary Service's stand-in for PGHOST/PGPORT and the twin's CA for PGSSLROOTCERT.
   */
  rolesJob(
    source?: FileSource,
    /** The Secrets' values as they are now, by the Job's env var (POSTGRES_ALTERNATE_PASSWORD...). @default - the launch's */
    values?: Readonly<Record<string, string>>,
  ): Promise<{ code: number | null; output: string }>;
  query<T = Record<string, unknown>>(ep: processes.Endpoint, sql: string, params?: unknown[]): Promise<T[]>;
  /** Index of the member holding the leader key (from the REST API), or -1. */
  leaderIndex(): Promise<number>;
  /** Members as `GET /cluster` reports them. */
  cluster(): Promise<MemberState[]>;
  /** Whether member i's WAL receiver streams from an upstream (Patroni 3.0 says "running" before it does). */
  streaming(i: number): Promise<boolean>;
  /** SIGKILL the member's Patroni and every PostgreSQL process it runs (a lost node). */
  killMember(i: number): Promise<void>;
  /** SIGTERM Patroni (it stops PostgreSQL and hands over leadership, as on pod deletion). */
  stopMember(i: number): Promise<void>;
  /** Starts member i's Patroni again on its data directory. */
  startMember(i: number): Promise<void>;
  /** Whether member i's Patroni runs now (not killed or stopped). */
  running(i: number): boolean;
  /** Waits until there is a leader and `n` replicas streaming from it (default all others). */
  waitHealthy(n?: number, timeoutMs?: number): Promise<number>;
  /** Runs patronictl against the cluster. */
  patronictl(...args: string[]): Promise<{ code: number | null; output: string }>;
  /**
   * Runs the reconfigure Job's script of `source` (its `postgres-files`: reconfigure.py and the
   * patroni.yml whose bootstrap.dcs is the desired configuration) against the running members, as
   * the Job does (python3, PATRONI_MEMBERS = the members' REST URLs).
   */
  reconfigure(source: FileSource, waitSeconds?: number): Promise<ReconfigureRun>;
  log(i: number): string;
  stop(): Promise<void>;
}

/** Who a client logs in as: the runtime role, the migration role or the superuser. */
export type LoginRole = 'app' | 'migration' | 'superuser';

/** What one run of the reconfigure script did (its exit code, log, and the summary line it prints last). */
export interface ReconfigureRun {
  readonly code: number | null;
  readonly output: string;
  readonly seconds: number;
  readonly summary?: {
    readonly patched: readonly string[];
    readonly restarted: readonly string[];
    readonly switchover: {
      readonly from: string;
      readonly to: string;
      readonly startedAt: number;
      readonly endedAt: number;
    } | null;
    readonly leaderRestarted: boolean;
  };
}

/** Inputs of the twin's substitutions in patroni.yml for one member. */
export interface TwinPatroniMember {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly restPort: number;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly pgpassFile: string;
  readonly configDir: string;
  readonly etcdHosts: string;
  /** The TLS files, when the shipped config turns TLS on. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

/** Paths (dotted) the twin changes in patroni.yml; a test pins that nothing else differs. */
export const TWIN_PATRONI_CHANGES = [
  'name',
  'kubernetes',
  'etcd3',
  'restapi.listen',
  'restapi.connect_address',
  'postgresql.listen',
  'postgresql.connect_address',
  'postgresql.data_dir',
  'postgresql.pgpass',
  'postgresql.parameters.unix_socket_directories',
  'bootstrap.post_bootstrap',
  `bootstrap.${PGBACKREST_METHOD}.command`,
  'postgresql.parameters.ssl_cert_file',
  'postgresql.parameters.ssl_key_file',
  'postgresql.authentication.replication.sslrootcert',
  'postgresql.authentication.rewind.sslrootcert',
] as const;

/** The shipped patroni.yml with the member's addresses, paths and the etcd3 DCS. */
export function twinPatroniConfig(shipped: string, m: TwinPatroniMember): string {
  const doc = parse(shipped) as Record<string, Record<string, unknown>> & { name?: string };
  const pg = doc.postgresql as Record<string, unknown> & { parameters: Record<string, unknown> };
  const shippedConfigDir = /^sh (\S+)\//.exec(String(doc.bootstrap.post_bootstrap))?.[1];
  if (!shippedConfigDir)
    throw new Error(
      `patroni.yml: bootstrap.post_bootstrap (${doc.bootstrap.post_bootstrap}) is not 'sh <dir>/<script>'`,
    );
  delete doc.kubernetes;
  const auth = pg.authentication as Record<string, Record<string, unknown>>;
  const tlsAuth = (role: string) =>
    m.tls && auth[role].sslrootcert ? { ...auth[role], sslrootcert: m.tls.caFile } : auth[role];
  const out = {
    name: m.name,
    ...doc,
    etcd3: { hosts: m.etcdHosts },
    restapi: { ...doc.restapi, listen: `${m.host}:${m.restPort}`, connect_address: `${m.host}:${m.restPort}` },
    bootstrap: {
      ...doc.bootstrap,
      post_bootstrap: String(doc.bootstrap.post_bootstrap).replace(shippedConfigDir, m.configDir),
      // A restore (postgres.restore) bootstraps with the shipped restore.sh.
      ...(doc.bootstrap[PGBACKREST_METHOD]
        ? {
            [PGBACKREST_METHOD]: {
              ...(doc.bootstrap[PGBACKREST_METHOD] as Record<string, unknown>),
              command: String((doc.bootstrap[PGBACKREST_METHOD] as { command: string }).command).replace(
                shippedConfigDir,
                m.configDir,
              ),
            },
          }
        : {}),
    },
    postgresql: {
      ...pg,
      listen: `${m.host}:${m.port}`,
      connect_address: `${m.host}:${m.port}`,
      data_dir: m.dataDir,
      pgpass: m.pgpassFile,
      parameters: {
        ...pg.parameters,
        unix_socket_directories: m.socketDir,
        ...(m.tls && pg.parameters.ssl_cert_file ? { ssl_cert_file: m.tls.certFile, ssl_key_file: m.tls.keyFile } : {}),
      },
      authentication: { ...auth, replication: tlsAuth('replication'), rewind: tlsAuth('rewind') },
    },
  };
  return stringify(out, { lineWidth: 0 });
}

/** Files every postgres-files ConfigMap ships (tls-reload.sh only with TLS on). */
const REQUIRED = Object.values(PATRONI_FILES).filter((f) => f !== PATRONI_FILES.tlsReload);

/** Starts a one-member etcd 3.4 (Debian's etcd-server) as the twin's DCS. */
export async function startEtcd(root: string, host: string): Promise<{ ep: processes.Endpoint; proc: processes.Proc }> {
  const client = await processes.freePort(host);
  const peer = await processes.freePort(host);
  const dir = processes.makeDir(join(root, 'etcd'));
  const ep = { host, port: client };
  const proc = processes.spawnServer(
    'etcd',
    [
      '--name=etcd0',
      `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=http://${host}:${client}`,
      `--advertise-client-urls=http://${host}:${client}`,
      `--listen-peer-urls=http://${host}:${peer}`,
      `--initial-advertise-peer-urls=http://${host}:${peer}`,
      `--initial-cluster=etcd0=http://${host}:${peer}`,
      '--log-level=warn',
    ],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, cwd: dir, logFile: join(dir, 'etcd.log') },
  );
  await processes.waitFor(
    `etcd ${host}:${client}`,
    async () => (await httpGet(ep, '/health')).status === 200,
    30000,
    proc.log,
    proc,
  );
  return { ep, proc };
}

export async function startPatroni(source: FileSource, opts: StartPatroniOptions = {}): Promise<PatroniLaunch> {
  const files = filesFrom(source, opts.configMap ?? 'postgres-files', REQUIRED);
  const n = opts.members ?? 3;
  const sts = opts.statefulSet ?? 'postgres';
  const timeoutMs = opts.timeoutMs ?? 180000;
  const database = opts.database ?? envOf(source, sts, 'POSTGRES_DB') ?? 'fastnext';
  const user = opts.user ?? envOf(source, sts, 'POSTGRES_USER') ?? 'fastnext';
  const shipped = parse(files[PATRONI_FILES.patroni]) as {
    postgresql: { authentication: Record<'superuser' | 'replication' | 'rewind', { username: string }> };
  };
  const superuser = shipped.postgresql.authentication.superuser.username;
  const pgUser = processes.osUser('postgres');
  const secret = () => randomBytes(18).toString('base64url');
  const password = secret();
  // let: setMemberSecrets changes them, as an updated Secret changes the members' credentials volume.
  let replicationPassword = secret();
  let superPassword = secret();
  const alternatePassword = secret();
  let exporterPassword = secret();
  const exporterDsn = envOf(source, sts, 'DATA_SOURCE_NAME');
  const exporterUser = (exporterDsn && /^postgresql:\/\/([^@:/]+)@/.exec(exporterDsn)?.[1]) ?? 'postgres_exporter';
  const migrationPassword = secret();
  const migrationUser = envOf(source, sts, 'POSTGRES_MIGRATION_USER') ?? `${user}_migrator`;

  const root = processes.makeTempDir('fastnext-patroni-', opts.parentDir);
  const configDir = join(root, 'config');
  processes.writeFiles(configDir, files);
  const shippedBackupConf = files[PGBACKREST_FILES.conf] as string | undefined;
  let backup: TwinBackup | undefined;
  if (shippedBackupConf) {
    const conf = parsePgBackRestConf(shippedBackupConf);
    const stanza = Object.keys(conf).find((k) => k !== 'global');
    if (!stanza) throw new Error('pgbackrest.conf has no stanza section');
    backup = {
      repositoryDir: opts.backup?.repositoryDir ?? join(root, 'backup-repository'),
      cipherPass: opts.backup?.cipherPass ?? secret(),
      stanza,
      encrypted: conf.global['repo1-cipher-type'] !== undefined,
    };
  }
  const [etcdHost, routerHost, ...hosts] = processes.loopbackAddresses(2 + n);
  const members: PatroniMember[] = [];
  for (let i = 0; i < n; i++) {
    const host = hosts[i];
    const dir = join(root, `member-${i}`);
    members.push({
      name: `${sts}-${i}`,
      host,
      port: await processes.freePort(host),
      rest: { host, port: await processes.freePort(host) },
      dataDir: join(dir, 'data', 'pgdata'),
    });
  }
  if (backup) processes.makeDir(backup.repositoryDir);
  processes.chownTree(root, pgUser.uid, pgUser.gid);
  if (backup) processes.chownTree(backup.repositoryDir, pgUser.uid, pgUser.gid);
  const tlsOn =
    (parse(files[PATRONI_FILES.patroni]) as { postgresql: { parameters: Record<string, unknown> } }).postgresql
      .parameters.ssl === 'on';
  const tlsDir = join(root, 'tls');
  const issue = async (ca?: TwinCa) =>
    issueTwinTls(tlsSecretGeneratorScript(), {
      dir: tlsDir,
      // The Services' and members' stand-ins are loopback addresses: the certificate names those.
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', routerHost, ...hosts],
      owner: pgUser,
      ca: ca ?? opts.ca ?? (await twinCa()),
    });
  let tls: TwinTls | undefined = tlsOn ? await issue() : undefined;
  const etcd = await startEtcd(root, etcdHost);

  const memberConfig = members.map((m, i) => {
    const dir = join(root, `member-${i}`);
    for (const sub of ['', 'data', 'run', 'tmp']) processes.makeDir(join(dir, sub), pgUser);
    const text = twinPatroniConfig(files[PATRONI_FILES.patroni], {
      name: m.name,
      host: m.host,
      port: m.port,
      restPort: m.rest.port,
      dataDir: m.dataDir,
      socketDir: join(dir, 'run'),
      pgpassFile: join(dir, 'tmp', 'pgpass'),
      configDir,
      etcdHosts: `${etcd.ep.host}:${etcd.ep.port}`,
      tls,
    });
    processes.writeFiles(dir, { 'patroni.yml': text });
    processes.chownTree(join(dir, 'patroni.yml'), pgUser.uid, pgUser.gid);
    if (backup && shippedBackupConf) {
      processes.writeFiles(dir, {
        [PGBACKREST_FILES.conf]: twinPgBackRestConf(shippedBackupConf, {
          dataDir: m.dataDir,
          port: m.port,
          socketDir: join(dir, 'run'),
          lockPath: join(dir, 'tmp', 'pgbackrest'),
          repositoryDir: backup.repositoryDir,
        }),
      });
    }
    return text;
  });
  const env = (i: number): Record<string, string> => {
    const dir = join(root, `member-${i}`);
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      LANG: 'C.UTF-8',
      TMPDIR: join(dir, 'tmp'),
      // As the pod's env: the entry point's inputs (its credentials volume, a private runtime directory),
      // the post-bootstrap script's inputs.
      [PATRONI_START_ENV.config]: join(dir, 'patroni.yml'),
      [PATRONI_START_ENV.superuserPassword]: join(dir, 'credentials', PATRONI_CREDENTIAL_FILES.superuserPassword),
      [PATRONI_START_ENV.replicationPassword]: join(dir, 'credentials', PATRONI_CREDENTIAL_FILES.replicationPassword),
      [PATRONI_START_ENV.runtimeDir]: join(dir, 'tmp', 'patroni-config'),
      [PATRONI_START_ENV.interval]: '1',
      [PATRONI_START_ENV.exporterPassword]: join(
        dir,
        'exporter-credentials',
        PATRONI_CREDENTIAL_FILES.exporterPassword,
      ),
      [PATRONI_START_ENV.exporterPassfile]: join(dir, 'run', 'exporter.pgpass'),
      POSTGRES_USER: user,
      POSTGRES_DB: database,
      POSTGRES_PASSWORD: password,
      POSTGRES_EXPORTER_PASSWORD: exporterPassword,
      POSTGRES_MIGRATION_USER: migrationUser,
      POSTGRES_MIGRATION_PASSWORD: migrationPassword,
      // As the pod's env when backups are on: pgBackRest's config, stanza and cipher pass.
      ...(backup
        ? {
            [PGBACKREST_ENV.config]: join(dir, PGBACKREST_FILES.conf),
            [PGBACKREST_ENV.stanza]: backup.stanza,
            ...(backup.encrypted ? { [PGBACKREST_ENV.cipherPass]: backup.cipherPass } : {}),
          }
        : {}),
    };
  };
  const procs: (processes.Proc | undefined)[] = members.map(() => undefined);
  const reloaders: processes.Proc[] = [];
  let runs = 0;
  let reconfigures = 0;
  let rolesRuns = 0;
  /** Each member's credentials volume as the kubelet writes the Secret's two keys. */
  const writeCredentials = () => {
    for (let i = 0; i < n; i++) {
      writeSecretVolume(join(root, `member-${i}`, 'credentials'), {
        [PATRONI_CREDENTIAL_FILES.superuserPassword]: superPassword,
        [PATRONI_CREDENTIAL_FILES.replicationPassword]: replicationPassword,
      });
      writeSecretVolume(join(root, `member-${i}`, 'exporter-credentials'), {
        [PATRONI_CREDENTIAL_FILES.exporterPassword]: exporterPassword,
      });
    }
  };
  writeCredentials();
  const spawnMember = (i: number) => {
    const dir = join(root, `member-${i}`);
    // The shipped entry point, as the container runs it: it writes the passwords and execs Patroni.
    procs[i] = processes.spawnServer('sh', [join(configDir, PATRONI_FILES.start)], {
      env: env(i),
      uid: pgUser.uid,
      gid: pgUser.gid,
      cwd: dir,
      logFile: join(dir, `patroni.${runs++}.log`),
    });
  };

  const logins: Record<LoginRole, { user: string; password: string }> = {
    app: { user, password },
    migration: { user: migrationUser, password: migrationPassword },
    superuser: { user: superuser, password: superPassword },
  };
  const clientConfig = (ep: processes.Endpoint = primaryService.endpoint, as: LoginRole = 'app'): ClientConfig => ({
    host: ep.host,
    port: ep.port,
    database,
    ...logins[as],
    connectionTimeoutMillis: 5000,
    // verify-full: the CA, and the address checked against the certificate's names (node's default).
    ...(tls ? { ssl: { ca: tls.ca, rejectUnauthorized: true } } : {}),
  });
  const connect = async (ep?: processes.Endpoint, as?: LoginRole) => {
    const c = new Client(clientConfig(ep, as));
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  const query = async <T>(ep: processes.Endpoint, sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = await connect(ep, 'superuser');
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end();
    }
  };
  const cluster = async (): Promise<MemberState[]> => {
    for (const m of members) {
      try {
        const r = await httpGet(m.rest, '/cluster');
        if (r.status === 200) return (JSON.parse(r.body) as { members: MemberState[] }).members;
      } catch {
        // Try the next member.
      }
    }
    return [];
  };
  const leaderIndex = async () => {
    const leader = (await cluster()).find((m) => m.role === 'leader' && m.state === 'running');
    return leader ? members.findIndex((m) => m.name === leader.name) : -1;
  };
  // A replica counts once its WAL receiver streams: Patroni 3.0 reports a replica "running"
  // with lag 0 while it still replays from the archive, seconds before it connects to the
  // leader (reads then miss what the leader just committed).
  const receiving = async (name: string) => {
    const m = members.find((x) => x.name === name);
    if (!m) return false;
    try {
      const rows = await query<{ n: number }>(
        m,
        "SELECT count(*)::int AS n FROM pg_stat_wal_receiver WHERE status = 'streaming'",
      );
      return rows[0]?.n === 1;
    } catch {
      return false;
    }
  };
  const streamingCount = async () => {
    const c = (clusterCache = await cluster());
    const replicas = c.filter(
      (m) => m.role !== 'leader' && (m.state === 'streaming' || m.state === 'running') && typeof m.lag === 'number',
    );
    return (await Promise.all(replicas.map((m) => receiving(m.name)))).filter(Boolean).length;
  };
  const waitHealthy = async (want = n - 1, t = timeoutMs) =>
    processes.waitFor(
      `a Patroni leader and ${want} streaming replicas`,
      async () => (await leaderIndex()) >= 0 && (await streamingCount()) >= want && primaryService.current.length === 1,
      t,
      () =>
        `${JSON.stringify(clusterCache)}\n${members.map((_, i) => `--- ${members[i].name}\n${procs[i]?.log().slice(-3000) ?? ''}`).join('\n')}`,
    );
  let clusterCache: MemberState[] = [];

  let primaryService!: ServiceProxy<PatroniMember>;
  let readOnlyService!: ServiceProxy<PatroniMember>;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all([primaryService?.stop(), readOnlyService?.stop()]);
    await Promise.all(reloaders.map((p) => processes.stopGroup(p, 'SIGKILL', 1000)));
    await Promise.all(procs.map((p) => (p ? processes.stopGroup(p, 'SIGTERM', 15000) : undefined)));
    for (let i = 0; i < n; i++) processes.killProcessesUsing(join(root, `member-${i}`));
    await processes.stopGroup(etcd.proc, 'SIGTERM', 5000);
    processes.removeDir(root);
  };
  const bringUpMs = await processes.bringUp(async () => {
    // The first member bootstraps; the others clone from it (as OrderedReady pods would).
    spawnMember(0);
    await processes.waitFor(
      `${members[0].name} leader`,
      async () => (await httpGet(members[0].rest, '/primary')).status === 200,
      timeoutMs,
      () => procs[0]?.log() ?? '',
      procs[0],
    );
    for (let i = 1; i < n; i++) spawnMember(i);
    const asEndpoints = (): ProxyEndpoint<PatroniMember>[] => members.map((m) => ({ target: m, name: m.name }));
    const answers = (path: string) => async (e: ProxyEndpoint<PatroniMember>) =>
      (await httpGet(e.target.rest, path, 500)).status === 200;
    primaryService = await ServiceProxy.start(`${sts}-primary`, routerHost, asEndpoints, answers('/primary'));
    readOnlyService = await ServiceProxy.start(`${sts}-readonly`, routerHost, asEndpoints, answers('/replica'));
    await waitHealthy(n - 1);
    if (tls && files[PATRONI_FILES.tlsReload]) {
      // The tls-reload sidecar of each pod: the shipped loop, polling every second here.
      members.forEach((m, i) => {
        const dir = join(root, `member-${i}`);
        reloaders.push(
          processes.spawnServer('sh', [join(configDir, PATRONI_FILES.tlsReload)], {
            env: {
              PATH: process.env.PATH ?? '/usr/bin:/bin',
              TLS_DIR: tlsDir,
              PGHOST: join(dir, 'run'),
              PGPORT: String(m.port),
              PGUSER: superuser,
              TLS_RELOAD_INTERVAL_SECONDS: '1',
            },
            uid: pgUser.uid,
            gid: pgUser.gid,
            cwd: dir,
            logFile: join(dir, 'tls-reload.log'),
          }),
        );
      });
    }
  }, stop);

  return {
    dir: root,
    configDir,
    primary: primaryService.endpoint,
    readOnly: readOnlyService.endpoint,
    primaryService,
    members,
    replicas: members.slice(1),
    etcd: etcd.ep,
    database,
    user,
    password,
    get superuser() {
      return { user: superuser, password: superPassword };
    },
    get exporter() {
      return { user: exporterUser, password: exporterPassword };
    },
    exporterEnv: (i) => {
      if (!exporterDsn) throw new Error(`StatefulSet ${sts} has no exporter DATA_SOURCE_NAME`);
      return {
        DATA_SOURCE_NAME: exporterDsn.replace(/@127\.0\.0\.1:\d+\//, `@${members[i].host}:${members[i].port}/`),
        PGPASSFILE: join(root, `member-${i}`, 'run', 'exporter.pgpass'),
      };
    },
    migration: logins.migration,
    get replicationPassword() {
      return replicationPassword;
    },
    alternatePassword,
    setMemberSecrets: (s) => {
      if (s.superuserPassword !== undefined) superPassword = logins.superuser.password = s.superuserPassword;
      // One Secret key for both roles, as patroni-start.sh writes it (rewind shares replication's).
      if (s.replicationPassword !== undefined) replicationPassword = s.replicationPassword;
      if (s.exporterPassword !== undefined) exporterPassword = s.exporterPassword;
      writeCredentials();
    },
    bringUpMs,
    memberConfig,
    get tls() {
      return tls;
    },
    reissueTls: async (ca) => {
      if (!tls) throw new Error('the shipped files do not turn TLS on');
      tls = await issue(ca);
      return tls;
    },
    clientConfig,
    connect,
    query,
    leaderIndex,
    cluster: async () => (clusterCache = await cluster()),
    streaming: (i) => receiving(members[i].name),
    killMember: async (i) => {
      const p = procs[i];
      processes.killProcessesUsing(join(root, `member-${i}`));
      if (p) await processes.stopGroup(p, 'SIGKILL', 1000);
      procs[i] = undefined;
    },
    stopMember: async (i) => {
      const p = procs[i];
      if (p) await processes.stopGroup(p, 'SIGTERM', 30000);
      procs[i] = undefined;
    },
    startMember: async (i) => {
      if (procs[i]) throw new Error(`member ${i} is running`);
      spawnMember(i);
      await processes.waitFor(
        `${members[i].name} REST API`,
        async () => (await httpGet(members[i].rest, '/patroni')).status > 0,
        timeoutMs,
        () => procs[i]?.log() ?? '',
        procs[i],
      );
    },
    running: (i) => procs[i] !== undefined && procs[i]!.child.exitCode === null && procs[i]!.child.signalCode === null,
    waitHealthy,
    patronictl: (...args) =>
      processes.runToEnd('patronictl', ['-c', join(root, 'member-0', 'patroni.yml'), ...args], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, LANG: 'C.UTF-8' },
      }),
    reconfigure: async (fileSource, waitSeconds = 120) => {
      const shipped = filesFrom(fileSource, opts.configMap ?? 'postgres-files', REQUIRED);
      const dir = join(root, `reconfigure-${reconfigures++}`);
      processes.writeFiles(dir, shipped);
      const t0 = Date.now();
      const run = await processes.runToEnd('python3', [join(dir, PATRONI_FILES.reconfigure)], {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dir,
          LANG: 'C.UTF-8',
          PYTHONDONTWRITEBYTECODE: '1',
          PATRONI_CONFIG: join(dir, PATRONI_FILES.patroni),
          PATRONI_MEMBERS: members.map((m) => `http://${m.rest.host}:${m.rest.port}`).join(' '),
          RECONFIGURE_WAIT_SECONDS: String(waitSeconds),
        },
      });
      const line = /^reconfigure: summary (.*)$/m.exec(run.output)?.[1];
      return { ...run, seconds: (Date.now() - t0) / 1000, summary: line ? JSON.parse(line) : undefined };
    },
    log: (i) => procs[i]?.log() ?? '',
    backup,
    pgbackrest: (i, ...args) =>
      processes.runToEnd('pgbackrest', args, {
        env: env(i),
        cwd: join(root, `member-${i}`),
        uid: pgUser.uid,
        gid: pgUser.gid,
      }),
    rolesJob: async (fileSource = source, values = {}) => {
      if (!Array.isArray(fileSource))
        throw new Error('rolesJob needs the synthesized objects (the Job and its ConfigMap)');
      const job = (fileSource as readonly KubeObject[]).find(
        (o) => o.kind === 'Job' && o.metadata.name.startsWith(`${sts}-roles-`),
      );
      if (!job) throw new Error(`no Job ${sts}-roles-<hash> among the objects given`);
      const container = (job.spec as { template: { spec: { containers: JobContainer[] } } }).template.spec
        .containers[0];
      const dir = join(root, `roles-${rolesRuns++}`);
      processes.writeFiles(dir, filesFrom(fileSource, opts.configMap ?? 'postgres-files', REQUIRED));
      processes.chownTree(dir, pgUser.uid, pgUser.gid);
      // The Secrets' values by the env var the Job reads them into; addresses and files are the twin's.
      const fromSecrets: Record<string, string> = {
        PGPASSWORD: superPassword,
        POSTGRES_PASSWORD: password,
        POSTGRES_MIGRATION_PASSWORD: migrationPassword,
        POSTGRES_EXPORTER_PASSWORD: exporterPassword,
        POSTGRES_ALTERNATE_PASSWORD: alternatePassword,
        ...values,
      };
      const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' };
      for (const e of container.env) {
        const value = e.value ?? fromSecrets[e.name];
        if (value === undefined) throw new Error(`the roles Job's env ${e.name} has no twin value`);
        env[e.name] = value;
      }
      Object.assign(env, {
        PGHOST: primaryService.endpoint.host,
        PGPORT: String(primaryService.endpoint.port),
        ...(env.PGSSLROOTCERT ? { PGSSLROOTCERT: tls?.caFile ?? '' } : {}),
      });
      const [shell, script, ...args] = container.command;
      return processes.runToEnd(shell, [join(dir, basename(script)), ...args], {
        env,
        cwd: dir,
        uid: pgUser.uid,
        gid: pgUser.gid,
      });
    },
    execShipped: (i, file, ...args) =>
      processes.runToEnd('sh', [join(configDir, file), ...args], {
        env: env(i),
        cwd: join(root, `member-${i}`),
        uid: pgUser.uid,
        gid: pgUser.gid,
      }),
    socketDsn: (i) =>
      `host=${join(root, `member-${i}`, 'run')} port=${members[i].port} user=${superuser} dbname=postgres`,
    runBackup: (i, type) =>
      processes.runToEnd('sh', [join(configDir, PGBACKREST_FILES.backup), type], {
        env: env(i),
        cwd: join(root, `member-${i}`),
        uid: pgUser.uid,
        gid: pgUser.gid,
      }),
    stop,
  };
}
