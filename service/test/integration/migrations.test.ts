/**
 * Migrations and activity_logs partitions on a real PostgreSQL primary
 * (launcher), including two `migrate` processes racing on an empty database.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Client } from 'pg';
import { LIST_ACTIVITY_SQL } from '../../src/domain/activity';
import { MIGRATIONS } from '../../src/migrations/migrations';
import {
  ensurePartitions,
  listPartitions,
  monthStart,
  MONTHS_AHEAD,
  partitionName,
} from '../../src/migrations/partitions';
import { type DataTier, startDataTier } from '../helpers/servers';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '../../..');
let tier: DataTier;
let client: Client;
let migrator: Client;

/** Runs the service entry point the way the image's Job does, in this checkout. */
function runCommand(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['tools/run.js', 'service/src/server.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env, LOG_LEVEL: 'info' },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

beforeAll(async () => {
  tier = await startDataTier({ replicas: 0, redis: false });
  await tier.migrate();
  client = await tier.pg.connect();
  migrator = await tier.pg.connect(undefined, 'migration');
});

afterAll(async () => {
  await client?.end();
  await migrator?.end();
  await tier?.stop();
});

test('two migrate processes racing on an empty database both succeed and apply each migration once', async () => {
  // Owned by the migration role, as roles.sh makes the application's database.
  await tier.pg.query(tier.pg.primary, `CREATE DATABASE race OWNER "${tier.pg.migration.user}"`);
  const env = tier.env({ POSTGRES_DB: 'race' });
  const [a, b] = await Promise.all([runCommand(['migrate'], env), runCommand(['migrate'], env)]);
  expect([a.code, b.code]).toEqual([0, 0]);
  // Exactly one of them applied the migrations; the other waited on the lock and found nothing to do.
  expect([a.output, b.output].filter((o) => o.includes('"msg":"migrations applied"'))).toHaveLength(1);
  expect([a.output, b.output].filter((o) => o.includes('"msg":"schema up to date"'))).toHaveLength(1);
  const race = new Client({ ...tier.pg.clientConfig(undefined, 'migration'), database: 'race' });
  await race.connect();
  try {
    const { rows } = await race.query('SELECT id FROM schema_migrations ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
  } finally {
    await race.end();
  }
});

test('fails when the database is unreachable, with exit code 1', async () => {
  const r = await runCommand(['migrate'], tier.env({ POSTGRES_SERVER: '127.0.0.1:1', DB_POOL_TIMEOUT: '1' }));
  expect(r.code).toBe(1);
  expect(r.output).toMatch(/^fatal: Error: connect ECONNREFUSED 127\.0\.0\.1:1/m);
});

test('partitions exist for this month and the next three, plus the default partition', async () => {
  const now = new Date();
  const expected = Array.from({ length: MONTHS_AHEAD + 1 }, (_, i) => partitionName(monthStart(now, i)));
  expect(await listPartitions(client)).toEqual(expect.arrayContaining(expected));
  const { rows } = await client.query("SELECT to_regclass('activity_logs_default') IS NOT NULL AS ok");
  expect(rows[0].ok).toBe(true);
});

test('maintain-partitions is idempotent and reports nothing to do when up to date', async () => {
  const r = await runCommand(['maintain-partitions'], tier.env());
  expect(r.code).toBe(0);
  expect(r.output).toContain('"created":[],"msg":"partitions up to date"');
});

test('a query by time range touches only the partitions of that range', async () => {
  // GIVEN rows in this month and next month
  const thisMonth = monthStart(new Date());
  const nextMonth = monthStart(new Date(), 1);
  await client.query(
    `INSERT INTO activity_logs (user_id, action, created_at) VALUES (7, 'create', $1), (7, 'update', $2)`,
    [new Date(thisMonth.getTime() + 3600_000), new Date(nextMonth.getTime() + 3600_000)],
  );
  // WHEN the endpoint's own SQL runs for next month only
  const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${LIST_ACTIVITY_SQL}`, [
    '7',
    nextMonth,
    monthStart(new Date(), 2),
    100,
  ]);
  const relations = new Set<string>();
  const walk = (node: Record<string, unknown>) => {
    if (typeof node['Relation Name'] === 'string') relations.add(node['Relation Name']);
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  walk(rows[0]['QUERY PLAN'][0].Plan);
  // THEN the plan reads next month's partition and nothing else
  expect([...relations]).toEqual([partitionName(nextMonth)]);
});

test('a new partition takes over rows that had landed in the default partition', async () => {
  // GIVEN a row far in the future, which only the default partition accepts
  const far = monthStart(new Date(), 14);
  await client.query(`INSERT INTO activity_logs (user_id, action, created_at) VALUES (8, 'create', $1)`, [
    new Date(far.getTime() + 60_000),
  ]);
  const where = async () =>
    (await client.query('SELECT tableoid::regclass::text AS part FROM activity_logs WHERE user_id = 8')).rows[0].part;
  expect(await where()).toBe('activity_logs_default');
  // WHEN its month's partition is created (by the migration role, as the CronJob runs it)
  expect(await ensurePartitions(migrator, far, 1)).toEqual([partitionName(far)]);
  // THEN the row moved into it
  expect(await where()).toBe(partitionName(far));
});
