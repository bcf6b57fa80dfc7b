/**
 * Real servers on loopback for the metric-existence proof: a PostgreSQL primary
 * with one streaming replica (slot), a Redis Cluster master with one replica,
 * nginx with stub_status, the three Debian exporters in front of them, the
 * bundled API service and a Prometheus. Every process runs in its own process group; `stopAll()` kills
 * the groups and removes the temp dirs.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const HOST = '127.0.0.1';

interface Proc {
  readonly name: string;
  readonly pid: number;
  log: string;
  exitCode: number | null | undefined;
}

const procs: Proc[] = [];
const dirs: string[] = [];

/** A free loopback port (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

function start(name: string, cmd: string, args: string[], opts: { uid?: number; env?: Record<string, string> } = {}) {
  const child = spawn(cmd, args, {
    detached: true,
    uid: opts.uid,
    gid: opts.uid,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const p: Proc = { name, pid: child.pid, log: '', exitCode: undefined };
  const keep = (d: Buffer) => {
    p.log = (p.log + d.toString()).slice(-16384);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', (code) => {
    p.exitCode = code;
  });
  procs.push(p);
  return p;
}

/** Polls `probe` until it returns true; throws with the processes' logs after `timeoutMs`. */
export async function waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 20000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // Not ready yet.
    }
    if (Date.now() > until) {
      const logs = procs.map((p) => `--- ${p.name} (exit ${String(p.exitCode)})\n${p.log.slice(-2000)}`).join('\n');
      throw new Error(`timed out waiting for ${what}\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function httpOk(url: string): Promise<boolean> {
  const r = await fetch(url);
  return r.ok;
}

export function stopAll(): void {
  for (const p of procs.splice(0)) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

const psql = (port: number, sql: string) =>
  execFileSync(`${PG_BIN}/psql`, ['-h', HOST, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-Atc', sql], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();

/** Primary + one replica streaming through a physical slot, pg_stat_statements loaded. */
export async function startPostgres(): Promise<{ primary: number; replica: number }> {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const root = tempDir('metrics-pg-');
  chownSync(root, uid, uid);
  const [primary, replica] = [await freePort(), await freePort()];
  const pdata = join(root, 'primary');
  const rdata = join(root, 'replica');
  const asPg = { uid };
  execFileSync(`${PG_BIN}/initdb`, ['-D', pdata, '-A', 'trust', '-U', 'postgres'], { ...asPg, stdio: 'ignore' });
  appendFileSync(
    join(pdata, 'postgresql.conf'),
    `listen_addresses='${HOST}'\nunix_socket_directories='${root}'\nshared_preload_libraries='pg_stat_statements'\n`,
  );
  appendFileSync(join(pdata, 'pg_hba.conf'), `host replication all ${HOST}/32 trust\n`);
  start('postgres-primary', `${PG_BIN}/postgres`, ['-D', pdata, '-p', String(primary)], asPg);
  await waitFor('postgres primary', () => psql(primary, 'select 1') === '1');
  execFileSync(
    `${PG_BIN}/pg_basebackup`,
    ['-h', HOST, '-p', String(primary), '-U', 'postgres', '-D', rdata, '-R', '-X', 'stream', '-C', '-S', 'replica_0'],
    { ...asPg, stdio: 'ignore' },
  );
  start('postgres-replica', `${PG_BIN}/postgres`, ['-D', rdata, '-p', String(replica)], asPg);
  await waitFor('replica streaming', () => psql(primary, 'select count(*) from pg_stat_replication') === '1');
  psql(primary, 'create extension if not exists pg_stat_statements');
  return { primary, replica };
}

/** A one-master Redis Cluster (all 16384 slots) with one replica. */
export async function startRedis(): Promise<{ master: number; replica: number }> {
  const root = tempDir('metrics-redis-');
  const ports: number[] = [];
  for (const role of ['master', 'replica']) {
    const port = await freePort();
    const dir = join(root, role);
    mkdirSync(dir);
    // The cluster bus is port+10000 unless set; pick another free port for it.
    const bus = await freePort();
    start(`redis-${role}`, '/usr/bin/redis-server', [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--cluster-enabled',
      'yes',
      '--cluster-port',
      String(bus),
      '--repl-diskless-sync-delay',
      '0',
    ]);
    ports.push(port);
  }
  const cli = (port: number, ...args: string[]) =>
    execFileSync('/usr/bin/redis-cli', ['-h', HOST, '-p', String(port), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  const [master, replica] = ports;
  await waitFor('redis', () => cli(master, 'ping') === 'PONG' && cli(replica, 'ping') === 'PONG');
  cli(master, 'cluster', 'addslotsrange', '0', '16383');
  const busOf = (port: number) => cli(port, 'config', 'get', 'cluster-port').split('\n')[1];
  cli(replica, 'cluster', 'meet', HOST, String(master), busOf(master));
  const id = cli(master, 'cluster', 'myid');
  await waitFor('redis meet', () => cli(replica, 'cluster', 'nodes').includes(id));
  cli(replica, 'cluster', 'replicate', id);
  await waitFor('redis replica link', () => cli(replica, 'info', 'replication').includes('master_link_status:up'));
  await waitFor('redis cluster_state:ok', () => cli(master, 'cluster', 'info').includes('cluster_state:ok'));
  return { master, replica };
}

/** nginx with only a stub_status location (what the edge's internal status port serves). */
export async function startNginx(): Promise<number> {
  const root = tempDir('metrics-nginx-');
  const port = await freePort();
  writeFileSync(
    join(root, 'nginx.conf'),
    `daemon off;\npid ${root}/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n` +
      ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${root};\n`).join('') +
      `  server { listen ${HOST}:${port}; location = /stub_status { stub_status; } }\n}\n`,
  );
  start('nginx', '/usr/sbin/nginx', ['-c', join(root, 'nginx.conf'), '-p', root]);
  await waitFor('nginx', () => httpOk(`http://${HOST}:${port}/stub_status`));
  return port;
}

/** Starts a Debian exporter and waits until its /metrics answers. */
export async function startExporter(kind: 'postgres' | 'redis' | 'nginx', target: number): Promise<number> {
  const port = await freePort();
  const listen = `${HOST}:${port}`;
  if (kind === 'postgres') {
    start(`postgres-exporter-${target}`, '/usr/bin/prometheus-postgres-exporter', [`--web.listen-address=${listen}`], {
      env: { DATA_SOURCE_NAME: `postgresql://postgres@${HOST}:${target}/postgres?sslmode=disable` },
    });
  } else if (kind === 'redis') {
    start(`redis-exporter-${target}`, '/usr/bin/prometheus-redis-exporter', [
      '-redis.addr',
      `redis://${HOST}:${target}`,
      '-web.listen-address',
      listen,
    ]);
  } else {
    start('nginx-exporter', '/usr/bin/prometheus-nginx-exporter', [
      '-nginx.scrape-uri',
      `http://${HOST}:${target}/stub_status`,
      '-web.listen-address',
      listen,
    ]);
  }
  await waitFor(`${kind} exporter`, () => httpOk(`http://${listen}/metrics`));
  return port;
}

/** Debian's Prometheus with the given config file, storage in a temp dir. */
export async function startPrometheus(configFile: string): Promise<string> {
  const port = await freePort();
  const data = tempDir('metrics-prom-');
  start('prometheus', '/usr/bin/prometheus', [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${data}`,
    `--web.listen-address=${HOST}:${port}`,
  ]);
  const url = `http://${HOST}:${port}`;
  await waitFor('prometheus ready', () => httpOk(`${url}/-/ready`));
  return url;
}

/** Metric names in a Prometheus text exposition. */
export function namesInExposition(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

/**
 * The bundled API service (service/src/server.ts, transpiled on load) against
 * the servers above; resolves with its metrics URL once /metrics answers and a
 * liveness request has been observed by the request histogram.
 */
export async function startService(opts: {
  postgres: { primary: number; replica: number };
  redisNodes: number[];
}): Promise<string> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const root = join(__dirname, '..', '..');
  start('api-service', process.execPath, [join(root, 'tools', 'run.js'), join(root, 'service', 'src', 'server.ts')], {
    env: {
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'warn',
      POSTGRES_SERVER: `${HOST}:${opts.postgres.primary}`,
      POSTGRES_READ_REPLICAS: `${HOST}:${opts.postgres.replica}`,
      POSTGRES_DB: 'postgres',
      POSTGRES_USER: 'postgres',
      // The test cluster trusts loopback; the service still insists on a password being set.
      POSTGRES_PASSWORD: 'unused-with-trust-auth',
      REDIS_CLUSTER_NODES: opts.redisNodes.map((p) => `${HOST}:${p}`).join(','),
      CACHE_WARM_ON_START: 'false',
      MANAGEMENT_TOKEN: 'metrics-check-management-token',
      SHUTDOWN_DRAIN_SECONDS: '0',
    },
  });
  const metricsUrl = `http://${HOST}:${metricsPort}/metrics`;
  await waitFor('API service metrics', () => httpOk(metricsUrl), 30000);
  await waitFor('API service liveness', () => httpOk(`http://${HOST}:${port}/api/v1/scaling/health/liveness`));
  return metricsUrl;
}
