/**
 * The loopback launcher itself: it refuses incomplete inputs with a clear message,
 * and leaves no process and no directory behind, after a clean stop and after a
 * failed start.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresConfigFiles } from '../constructs/postgres/files';
import { redisConfigFiles } from '../constructs/redis/files';
import { loadEnvironment } from '../stacks/environments';
import { startPostgres, startRedisCluster } from '../tools/runtime/launcher';
import { processesUsing } from '../tools/runtime/launcher/processes';

jest.setTimeout(120000);

const config = loadEnvironment('dev');
let parent: string;
beforeAll(() => {
  parent = mkdtempSync(join(tmpdir(), 'fastnext-launcher-test-'));
  chmodSync(parent, 0o755); // the postgres user must traverse it
});
afterAll(() => rmSync(parent, { recursive: true, force: true }));

test('fails when the objects hold no postgres-config ConfigMap', async () => {
  await expect(startPostgres([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } }])).rejects.toThrow(
    "no ConfigMap 'postgres-config' with data among the 1 objects given",
  );
});

test('fails when the files lack the scripts', async () => {
  await expect(startRedisCluster({ 'redis.conf': 'port 6379\n' })).rejects.toThrow(
    "ConfigMap 'redis-config' lacks redis-start.sh, cluster-create.sh",
  );
});

test('stop() ends every PostgreSQL process and removes the directory', async () => {
  const pg = await startPostgres(postgresConfigFiles(config.postgres), { replicas: 1, parentDir: parent });
  expect(processesUsing(pg.dir).length).toBeGreaterThan(1);
  await pg.stop();
  expect(processesUsing(pg.dir)).toEqual([]);
  expect(readdirSync(parent)).toEqual([]);
});

test('a failed start (a broken postgresql.conf) rejects with the server log and leaves nothing behind', async () => {
  const files = postgresConfigFiles(config.postgres);
  files['postgresql.conf'] += 'no_such_setting = 1\n';
  await expect(startPostgres(files, { replicas: 1, parentDir: parent, timeoutMs: 30000 })).rejects.toThrow(
    'unrecognized configuration parameter "no_such_setting"',
  );
  expect(readdirSync(parent)).toEqual([]);
  expect(processesUsing(parent)).toEqual([]);
});

test('stop() ends every Redis node and removes the directory', async () => {
  const redis = await startRedisCluster(redisConfigFiles(config.redis), { parentDir: parent });
  expect(processesUsing(redis.dir)).toHaveLength(6);
  await redis.stop();
  expect(processesUsing(redis.dir)).toEqual([]);
  expect(readdirSync(parent)).toEqual([]);
});
