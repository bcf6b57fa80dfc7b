/**
 * The loopback launcher itself: it refuses incomplete inputs with a clear message,
 * and leaves no process and no directory behind, after a clean stop and after a
 * failed start.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { redisConfigFiles } from '../constructs/redis/files';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { startPatroni, startPgBouncer, startRedisCluster } from '../tools/runtime/launcher';
import { TWIN_PATRONI_CHANGES, twinPatroniConfig } from '../tools/runtime/launcher/patroni';
import { TWIN_PGBOUNCER_CHANGES, twinPgbouncerIni } from '../tools/runtime/launcher/pgbouncer';
import { processesUsing } from '../tools/runtime/launcher/processes';
import { filesFrom } from '../tools/runtime/launcher/sources';

jest.setTimeout(120000);

const config = loadEnvironment('dev');
const objects = synthObjects(config);
const pgFiles = () => filesFrom(objects, 'postgres-files', ['patroni.yml', 'post-bootstrap.sh']);
const bouncerFiles = () => filesFrom(objects, 'pgbouncer-config', ['pgbouncer.ini', 'pgbouncer-start.sh']);

/** A process's command name (`/proc/<pid>/comm`), or '' once it is gone. */
function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Dotted paths whose values differ between two parsed YAML documents. */
function changedPaths(a: unknown, b: unknown, prefix = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(a) || !isObj(b)) return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((k) =>
    changedPaths(a[k], b[k], prefix ? `${prefix}.${k}` : k),
  );
}

test("the twin's patroni.yml changes only addresses, paths and the DCS section", () => {
  const shipped = pgFiles()['patroni.yml'];
  const twin = twinPatroniConfig(shipped, {
    name: 'postgres-0',
    host: '127.1.2.3',
    port: 5432,
    restPort: 8008,
    dataDir: '/tmp/x/data',
    socketDir: '/tmp/x/run',
    pgpassFile: '/tmp/x/pgpass',
    configDir: '/tmp/x/config',
    etcdHosts: '127.1.2.4:2379',
  });
  const changed = changedPaths(parse(shipped), parse(twin));
  const allowed = (p: string) => TWIN_PATRONI_CHANGES.some((c) => p === c || p.startsWith(`${c}.`));
  expect(changed.filter((p) => !allowed(p))).toEqual([]);
  expect(changed).toEqual(expect.arrayContaining(['kubernetes', 'etcd3', 'postgresql.data_dir', 'name']));
});

test("the twin's pgbouncer.ini changes only addresses and paths", () => {
  const shipped = bouncerFiles()['pgbouncer.ini'];
  const twin = twinPgbouncerIni(shipped, {
    listen: { host: '127.1.2.3', port: 7432 },
    runDir: '/tmp/x/run',
    server: { host: '127.1.2.4', port: 5432 },
  });
  const a = shipped.split('\n');
  const b = twin.split('\n');
  expect(b).toHaveLength(a.length);
  const changedKeys = a.flatMap((line, i) => (line === b[i] ? [] : [/^(\w+)\s*=/.exec(line)?.[1]]));
  // The [databases] entry (named after the database) points at the primary Service's stand-in.
  expect(changedKeys.sort()).toEqual(
    ['auth_file', config.postgres.database, 'listen_addr', 'listen_port', 'unix_socket_dir'].sort(),
  );
  expect(TWIN_PGBOUNCER_CHANGES).toContain('[databases]');
});
let parent: string;
beforeAll(() => {
  parent = mkdtempSync(join(tmpdir(), 'fastnext-launcher-test-'));
  chmodSync(parent, 0o755); // the postgres user must traverse it
});
afterAll(() => rmSync(parent, { recursive: true, force: true }));

test('fails when the objects hold no postgres-files ConfigMap', async () => {
  await expect(startPatroni([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } }])).rejects.toThrow(
    "no ConfigMap 'postgres-files' with data among the 1 objects given",
  );
});

test('fails when the files lack the scripts', async () => {
  await expect(startRedisCluster({ 'redis.conf': 'port 6379\n' })).rejects.toThrow(
    "ConfigMap 'redis-config' lacks redis-start.sh, cluster-create.sh",
  );
});

test('stop() ends every Patroni, etcd, PostgreSQL and PgBouncer process and removes the directories', async () => {
  const pg = await startPatroni(pgFiles(), { members: 2, parentDir: parent });
  const pool = await startPgBouncer(bouncerFiles(), { server: pg.primary, password: pg.password, parentDir: parent });
  expect(processesUsing(pg.dir).length).toBeGreaterThan(4);
  await pool.stop();
  await pg.stop();
  expect(processesUsing(parent)).toEqual([]);
  expect(readdirSync(parent)).toEqual([]);
});

test('a failed start (a failing post-bootstrap.sh) rejects with the Patroni log and leaves nothing behind', async () => {
  const files = { ...pgFiles(), 'post-bootstrap.sh': 'exit 3\n' };
  await expect(startPatroni(files, { members: 1, parentDir: parent, timeoutMs: 60000 })).rejects.toThrow(
    /post-bootstrap\.sh returned non-zero code 3/,
  );
  expect(readdirSync(parent)).toEqual([]);
  expect(processesUsing(parent)).toEqual([]);
});

test('stop() ends every Redis node and removes the directory', async () => {
  const redis = await startRedisCluster(redisConfigFiles(config.redis), { parentDir: parent });
  // Per node: redis-server, plus its start script's users-sync loop (a subshell and its sleep).
  const running = processesUsing(redis.dir);
  expect(running.filter((pid) => commandOf(pid) === 'redis-server')).toHaveLength(6);
  expect(running.length).toBeGreaterThan(6);
  await redis.stop();
  expect(processesUsing(redis.dir)).toEqual([]);
  expect(readdirSync(parent)).toEqual([]);
});
