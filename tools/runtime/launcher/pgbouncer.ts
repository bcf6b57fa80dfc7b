/**
 * Starts PgBouncer pods on loopback from the shipped `pgbouncer-config` ConfigMap
 * (pgbouncer.ini + pgbouncer-start.sh) with Debian's pgbouncer 1.18, as the `postgres` OS
 * user (PgBouncer refuses root). `twinPgbouncerIni` changes only addresses and paths
 * (pinned by a test); the entry point writes the userlist from PGBOUNCER_PASSWORD as in
 * the pod. Optionally runs the pgbouncer_exporter beside each pod: prometheus-community's
 * 0.10.2 from Debian 13 (the shipped sidecar's version, unpacked into .cache by
 * tools/install-servers.sh); Debian 12's Python exporter (1.7) cannot read PgBouncer 1.18's
 * SHOW STATS (it looks for `total_requests`, gone since 1.8).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
/** prometheus-community/pgbouncer_exporter 0.10.2 (Debian 13), unpacked by tools/install-servers.sh. */
export const PGBOUNCER_EXPORTER_BIN = join(
  __dirname,
  '..',
  '..',
  '..',
  '.cache',
  'exporters-debian13',
  'usr',
  'bin',
  'prometheus-pgbouncer-exporter',
);
import {
  PGBOUNCER_CREDENTIAL_FILES,
  PGBOUNCER_FILES,
  PGBOUNCER_RUN_DIR,
  PGBOUNCER_TLS_DIR,
  pgbouncerExporterArgs,
} from '../../../constructs/pgbouncer/pgbouncer-files';
import { tlsSecretGeneratorScript } from '../../../constructs/core/generated-secret';
import { issueTwinTls, twinCa, type TwinCa, type TwinTls } from './tls';
import {
  type Endpoint,
  type Proc,
  chownTree,
  freePort,
  loopbackAddresses,
  makeDir,
  makeTempDir,
  osUser,
  portOpen,
  removeDir,
  spawnServer,
  stopGroup,
  waitFor,
  writeFiles,
} from './processes';
import { ServiceProxy } from './service-proxy';
import { type FileSource, filesFrom } from './sources';
import { writeSecretVolume } from '../secret-volume';

/** Keys of pgbouncer.ini the twin changes; a test pins that nothing else differs. */
export const TWIN_PGBOUNCER_CHANGES = [
  'listen_addr',
  'listen_port',
  'unix_socket_dir',
  'auth_file',
  '[databases]',
  'client_tls_cert_file',
  'client_tls_key_file',
  'client_tls_ca_file',
  'server_tls_ca_file',
] as const;

/** The shipped pgbouncer.ini with this pod's address, run dir and the server the primary Service stands for. */
export function twinPgbouncerIni(
  shipped: string,
  pod: { listen: Endpoint; runDir: string; server: Endpoint; tlsDir?: string },
): string {
  let inDatabases = false;
  return shipped
    .split('\n')
    .map((line) => {
      if (/^\[/.test(line)) inDatabases = line.trim() === '[databases]';
      if (inDatabases && /=\s*host=/.test(line)) {
        return line.replace(/host=\S+/, `host=${pod.server.host}`).replace(/port=\d+/, `port=${pod.server.port}`);
      }
      const m = /^(\w+)\s*=\s*(.*)$/.exec(line);
      if (!m) return line;
      const [, key, value] = m;
      if (key === 'listen_addr') return `${key} = ${pod.listen.host}`;
      if (key === 'listen_port') return `${key} = ${pod.listen.port}`;
      if (key === 'unix_socket_dir' || key === 'auth_file')
        return `${key} = ${value.replace(PGBOUNCER_RUN_DIR, pod.runDir)}`;
      if (pod.tlsDir && /^(client|server)_tls_\w+_file$/.test(key))
        return `${key} = ${value.replace(PGBOUNCER_TLS_DIR, pod.tlsDir)}`;
      return line;
    })
    .join('\n');
}

export interface PgBouncerPod extends Endpoint {
  readonly name: string;
  readonly runDir: string;
  /** The exporter's /metrics, when started with `exporter: true`. */
  readonly metrics?: Endpoint;
}

export interface PgBouncerLaunch {
  readonly pods: readonly PgBouncerPod[];
  /** The stand-in for the pool's Service: new connections round robin over pods whose port is open. */
  readonly service: Endpoint;
  readonly proxy: ServiceProxy<PgBouncerPod>;
  /** TLS, when the shipped pgbouncer.ini turns it on (one Secret volume's stand-in for every pod). */
  readonly tls?: TwinTls;
  /**
   * With two application logins (the shipped entry point reads PGBOUNCER_CREDENTIALS_DIR): writes the
   * passwords' Secret volume as the kubelet updates it; the entry points' loops rewrite the userlist and reload.
   */
  writeCredentials(c: { password: string; alternatePassword: string }): void;
  /** Replaces the certificate in place (a renewed Secret); the entry points' watchers reload PgBouncer. */
  reissueTls(ca?: TwinCa): Promise<TwinTls>;
  /** SIGKILL pod i (PgBouncer and its exporter): a lost pod. */
  killPod(i: number): Promise<void>;
  startPod(i: number): Promise<void>;
  /** The process id of pod i's PgBouncer (the container's pid 1), while it runs. */
  pid(i: number): number | undefined;
  log(i: number): string;
  stop(): Promise<void>;
}

export interface StartPgBouncerOptions {
  /** Where the [databases] entry points: the stand-in for the primary Service. */
  readonly server: Endpoint;
  /** The application role's password (the Secret's `password`). */
  readonly password: string;
  /** The second login's password (`alternate-password`), when the shipped entry point reads both. @default - a random one */
  readonly alternatePassword?: string;
  /** @default 2 */
  readonly pods?: number;
  /** Also run prometheus-pgbouncer-exporter per pod. @default false */
  readonly exporter?: boolean;
  /** @default 'pgbouncer-config' */
  readonly configMap?: string;
  /** Name of the Service stand-in (logs, tables). @default 'pgbouncer' */
  readonly serviceName?: string;
  readonly parentDir?: string;
  /** The CA the twin's certificate is signed by (TLS on). @default the process's twin CA (the one Patroni's twin uses) */
  readonly ca?: TwinCa;
}

export async function startPgBouncer(source: FileSource, opts: StartPgBouncerOptions): Promise<PgBouncerLaunch> {
  const files = filesFrom(source, opts.configMap ?? 'pgbouncer-config', Object.values(PGBOUNCER_FILES));
  const n = opts.pods ?? 2;
  const owner = osUser('postgres');
  const root = makeTempDir('fastnext-pgbouncer-', opts.parentDir);
  const configDir = join(root, 'config');
  writeFiles(configDir, { [PGBOUNCER_FILES.start]: files[PGBOUNCER_FILES.start] });
  const hosts = loopbackAddresses(n);
  const serviceHost = loopbackAddresses(1)[0];
  const tlsOn = /^client_tls_sslmode\s*=\s*require/m.test(files[PGBOUNCER_FILES.ini]);
  const tlsDir = join(root, 'tls');
  const issue = async (ca?: TwinCa) =>
    issueTwinTls(tlsSecretGeneratorScript(), {
      dir: tlsDir,
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', serviceHost, ...hosts],
      owner,
      ca: ca ?? opts.ca ?? (await twinCa()),
    });
  let tls: TwinTls | undefined = tlsOn ? await issue() : undefined;
  // Two logins: the pods' projected Secret volume (one stand-in for every pod), updated as the kubelet does.
  const credentialsDir = /PGBOUNCER_CREDENTIALS_DIR/.test(files[PGBOUNCER_FILES.start])
    ? join(root, 'credentials')
    : undefined;
  const writeCredentials = (c: { password: string; alternatePassword: string }) => {
    if (!credentialsDir) throw new Error('the shipped pgbouncer-start.sh reads one password (no alternateLogin)');
    writeSecretVolume(credentialsDir, {
      [PGBOUNCER_CREDENTIAL_FILES.password]: c.password,
      [PGBOUNCER_CREDENTIAL_FILES.alternatePassword]: c.alternatePassword,
    });
  };
  if (credentialsDir) {
    writeCredentials({
      password: opts.password,
      alternatePassword: opts.alternatePassword ?? randomBytes(18).toString('base64url'),
    });
  }
  const pods: PgBouncerPod[] = [];
  for (let i = 0; i < n; i++) {
    const dir = makeDir(join(root, `${opts.serviceName ?? 'pgbouncer'}-${i}`));
    const runDir = makeDir(join(dir, 'run'));
    const listen = { host: hosts[i], port: await freePort(hosts[i]) };
    writeFiles(dir, {
      [PGBOUNCER_FILES.ini]: twinPgbouncerIni(files[PGBOUNCER_FILES.ini], {
        listen,
        runDir,
        server: opts.server,
        tlsDir: tls ? tlsDir : undefined,
      }),
    });
    // On 127.0.0.1 like the other exporters the twin's Prometheus scrapes (pod discovery's stand-in targets).
    const metrics = opts.exporter ? { host: '127.0.0.1', port: await freePort('127.0.0.1') } : undefined;
    pods.push({ name: `${opts.serviceName ?? 'pgbouncer'}-${i}`, ...listen, runDir, ...(metrics ? { metrics } : {}) });
  }
  chownTree(root, owner.uid, owner.gid);

  const procs: (Proc | undefined)[] = pods.map(() => undefined);
  const exporters: (Proc | undefined)[] = pods.map(() => undefined);
  let runs = 0;
  const startPod = async (i: number) => {
    const pod = pods[i];
    const dir = join(root, pod.name);
    const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' };
    const p = spawnServer('sh', [join(configDir, PGBOUNCER_FILES.start)], {
      env: {
        ...base,
        // As the pod's env: the password, or (two logins) the mounted Secret polled every second here.
        ...(credentialsDir
          ? { PGBOUNCER_CREDENTIALS_DIR: credentialsDir, CREDENTIALS_RELOAD_INTERVAL_SECONDS: '1' }
          : { PGBOUNCER_PASSWORD: opts.password }),
        PGBOUNCER_CONFIG_DIR: dir,
        PGBOUNCER_RUN_DIR: pod.runDir,
        // As the pod's env with TLS on; the watcher polls every second here.
        ...(tls ? { PGBOUNCER_TLS_DIR: tlsDir, TLS_RELOAD_INTERVAL_SECONDS: '1' } : {}),
      },
      uid: owner.uid,
      gid: owner.gid,
      cwd: dir,
      logFile: join(dir, `pgbouncer.${runs++}.log`),
    });
    procs[i] = p;
    await waitFor(`${pod.name} ${pod.host}:${pod.port}`, () => portOpen(pod), 30000, p.log, p);
    if (pod.metrics) {
      // As the sidecar: the stats user over TCP to the pod's own PgBouncer, password from the passfile.
      const e = spawnServer(
        PGBOUNCER_EXPORTER_BIN,
        pgbouncerExporterArgs(pod, `${pod.metrics.host}:${pod.metrics.port}`, tls?.caFile),
        {
          env: { ...base, PGPASSFILE: join(pod.runDir, 'stats.pgpass') },
          uid: owner.uid,
          gid: owner.gid,
          cwd: dir,
          logFile: join(dir, `exporter.${runs++}.log`),
        },
      );
      exporters[i] = e;
      await waitFor(`${pod.name} exporter`, () => portOpen(pod.metrics!), 30000, e.log, e);
    }
  };
  const killPod = async (i: number) => {
    await Promise.all([procs[i], exporters[i]].map((p) => (p ? stopGroup(p, 'SIGKILL', 1000) : undefined)));
    procs[i] = exporters[i] = undefined;
  };
  let proxy: ServiceProxy<PgBouncerPod> | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await proxy?.stop();
    await Promise.all([...procs, ...exporters].map((p) => (p ? stopGroup(p, 'SIGTERM', 5000) : undefined)));
    removeDir(root);
  };
  try {
    await Promise.all(pods.map((_, i) => startPod(i)));
    // The readiness probe is a TCP check of the pgbouncer port; 1 s stands in for its period.
    proxy = await ServiceProxy.start(
      opts.serviceName ?? 'pgbouncer',
      serviceHost,
      () => pods.map((p) => ({ target: p, name: p.name })),
      (e) => portOpen(e.target),
      1000,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    pods,
    service: proxy.endpoint,
    proxy,
    get tls() {
      return tls;
    },
    writeCredentials,
    reissueTls: async (ca) => {
      if (!tls) throw new Error('the shipped pgbouncer.ini does not turn TLS on');
      tls = await issue(ca);
      return tls;
    },
    killPod,
    startPod,
    pid: (i) => procs[i]?.pid,
    log: (i) => procs[i]?.log() ?? '',
    stop,
  };
}
