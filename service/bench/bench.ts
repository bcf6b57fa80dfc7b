/**
 * Measurements for the service's issue note, on the launcher's real servers:
 *
 * 1. Query time of the endpoints' own SQL (the constants in src/domain/) with vs. without the strategic indexes
 *    (EXPLAIN ANALYZE, median of 5) on 100k users, 100k projects and 1M
 *    activity rows over 12 monthly partitions. "Without" drops the indexes
 *    inside a transaction that is rolled back (DROP INDEX is transactional).
 * 2. Requests/s of GET /api/v1/users/:id served from the Redis cache vs. the
 *    same route with the cache off (reads from a replica), two app instances in
 *    one process, same run, with autocannon.
 *
 * Run: node tools/run.js service/bench/bench.ts [--seconds 10] [--connections 20]
 */
import autocannon from 'autocannon';
import type { FastifyInstance } from 'fastify';
import type { Client } from 'pg';
import { LIST_ACTIVITY_SQL, RECENT_CHANGES_SQL } from '../src/domain/activity';
import { LIST_BY_OWNER_SQL, LIST_BY_SETTING_SQL, settingFilter } from '../src/domain/projects';
import { RECENT_ACTIVE_USERS_SQL, SEARCH_USERS_SQL } from '../src/domain/users';
import { ensurePartitions, monthStart } from '../src/migrations/partitions';
import { startDataTier } from '../test/helpers/servers';

const USERS = 100_000;
const PROJECTS = 100_000;
const ACTIVITY = 1_000_000;
const MONTHS = 12;

const STRATEGIC_INDEXES = [
  'users_search_idx',
  'users_active_created_idx',
  'users_created_at_idx',
  'projects_owner_created_idx',
  'projects_settings_idx',
  'activity_logs_user_created_idx',
  'activity_logs_recent_changes_idx',
];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

async function seed(c: Client): Promise<void> {
  const now = new Date();
  await ensurePartitions(c, monthStart(now, -(MONTHS - 1)), MONTHS);
  await c.query(
    `INSERT INTO users (email, username, full_name, is_active, created_at)
     SELECT 'user' || g || '@example.com', 'user_' || g,
            (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald'])[1 + g % 6] || ' ' ||
            (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Smith','Jones'])[1 + g % 8] || ' ' || g,
            g % 10 <> 0, now() - (g % 365) * interval '1 day'
       FROM generate_series(1, $1) g`,
    [USERS],
  );
  await c.query(
    `INSERT INTO projects (owner_id, name, settings, created_at)
     SELECT 1 + (g * 7919) % $2, 'project ' || g,
            jsonb_build_object('plan', (ARRAY['free','pro','enterprise'])[1 + g % 3],
                               'region', (ARRAY['eu','us','ap','sa'])[1 + g % 4], 'beta', g % 50 = 0),
            now() - (g % 300) * interval '1 day'
       FROM generate_series(1, $1) g`,
    [PROJECTS, USERS],
  );
  await c.query(
    `INSERT INTO activity_logs (user_id, action, details, created_at)
     SELECT 1 + (g::bigint * 104729) % $2, (ARRAY['view','view','view','login','create','update','delete'])[1 + g % 7],
            jsonb_build_object('n', g),
            now() - (g % ($3 * 30 * 24)) * interval '1 hour' + interval '1 minute'
       FROM generate_series(1, $1) g`,
    [ACTIVITY, USERS, MONTHS],
  );
  await c.query('VACUUM ANALYZE');
}

interface Probe {
  readonly name: string;
  readonly sql: string;
  readonly params: unknown[];
}

function probes(activeUser: string): Probe[] {
  const now = new Date();
  const from = new Date(now.getTime() - 30 * 86_400_000);
  return [
    {
      name: 'users/search?q=grace hopper (full-text, ~4k matches)',
      sql: SEARCH_USERS_SQL,
      params: ['grace hopper', 20, true],
    },
    { name: 'projects?owner_id (list by owner)', sql: LIST_BY_OWNER_SQL, params: ['4242', 20] },
    {
      name: 'projects/by-setting?key=region&value=eu (JSONB @>, 25 % match)',
      sql: LIST_BY_SETTING_SQL,
      params: [settingFilter('region', 'eu'), 20],
    },
    {
      name: 'projects/by-setting?key=beta&value=true (JSONB @>, 2 % match)',
      sql: LIST_BY_SETTING_SQL,
      params: [settingFilter('beta', 'true'), 20],
    },
    { name: 'activity?user_id&from&to (30 days)', sql: LIST_ACTIVITY_SQL, params: [activeUser, from, now, 100] },
    {
      name: 'activity?user_id&from&to (12 months)',
      sql: LIST_ACTIVITY_SQL,
      params: [activeUser, new Date(now.getTime() - 365 * 86_400_000), now, 100],
    },
    {
      name: 'activity/recent-changes (7 days)',
      sql: RECENT_CHANGES_SQL,
      params: [new Date(now.getTime() - 7 * 86_400_000), 50],
    },
    { name: 'cache warm: newest active users', sql: RECENT_ACTIVE_USERS_SQL, params: [100] },
  ];
}

/** Median execution time of 5 runs, and the rows the query returned. */
async function executionMs(c: Client, p: Probe): Promise<{ ms: number; rows: number }> {
  const times: number[] = [];
  let rowsOut = 0;
  for (let i = 0; i < 5; i++) {
    const { rows } = await c.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${p.sql}`, p.params);
    times.push(rows[0]['QUERY PLAN'][0]['Execution Time'] as number);
    rowsOut = rows[0]['QUERY PLAN'][0].Plan['Actual Rows'] as number;
  }
  return { ms: times.sort((a, b) => a - b)[2], rows: rowsOut };
}

async function indexComparison(
  c: Client,
): Promise<{ name: string; rows: number; withMs: number; withoutMs: number }[]> {
  const out = [];
  const { rows } = await c.query(
    `SELECT user_id::text FROM activity_logs WHERE created_at >= now() - interval '30 days'
      GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1`,
  );
  for (const p of probes(rows[0].user_id)) {
    const withIdx = await executionMs(c, p);
    await c.query('BEGIN');
    for (const idx of STRATEGIC_INDEXES) await c.query(`DROP INDEX ${idx}`);
    const without = await executionMs(c, p);
    await c.query('ROLLBACK');
    if (without.rows !== withIdx.rows)
      throw new Error(`${p.name}: ${withIdx.rows} rows with indexes, ${without.rows} without`);
    out.push({ name: p.name, rows: withIdx.rows, withMs: withIdx.ms, withoutMs: without.ms });
  }
  return out;
}

async function rps(app: FastifyInstance, ids: string[], seconds: number, connections: number): Promise<number> {
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  let n = 0;
  const result = await autocannon({
    url: address,
    connections,
    duration: seconds,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/api/v1/users/${ids[n++ % ids.length]}` }) }],
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx, ${result.errors} errors`);
  return result.requests.average;
}

async function main(): Promise<number> {
  const seconds = arg('seconds', 10);
  const connections = arg('connections', 20);
  const tier = await startDataTier();
  try {
    await tier.migrate();
    const c = await tier.pg.connect();
    c.on('error', () => undefined); // the server stops under it at the end
    let t = Date.now();
    await seed(c);
    console.log(`seeded ${USERS} users, ${PROJECTS} projects, ${ACTIVITY} activity rows in ${Date.now() - t} ms`);
    const table = await indexComparison(c);
    await c.end();
    console.log(
      '\n| query (endpoint SQL) | rows | with indexes (ms) | without (ms) | speed-up |\n|---|---:|---:|---:|---:|',
    );
    for (const r of table) {
      const speedup = (r.withoutMs / r.withMs).toFixed(0);
      console.log(`| ${r.name} | ${r.rows} | ${r.withMs.toFixed(2)} | ${r.withoutMs.toFixed(2)} | ${speedup}x |`);
    }

    const ids = Array.from({ length: 1000 }, (_, i) => String(1 + i * 97));
    const cached = await tier.app({ LOG_LEVEL: 'silent' });
    const uncached = await tier.app({ LOG_LEVEL: 'silent', CACHE_ENABLED: 'false' });
    t = Date.now();
    while (!cached.cache.available && Date.now() - t < 15000) await new Promise((r) => setTimeout(r, 100));
    for (const id of ids) await cached.inject({ method: 'GET', url: `/api/v1/users/${id}` }); // fill the cache
    const hitsBefore = cached.cache.hits;
    const rpsCached = await rps(cached, ids, seconds, connections);
    const rpsUncached = await rps(uncached, ids, seconds, connections);
    console.log(
      `\nGET /api/v1/users/:id, ${connections} connections, ${seconds} s each, one process:\n` +
        `  cached (Redis Cluster):   ${rpsCached.toFixed(0)} req/s (${cached.cache.hits - hitsBefore} hits, ${cached.cache.misses} misses)\n` +
        `  uncached (replica reads): ${rpsUncached.toFixed(0)} req/s\n` +
        `  ratio: ${(rpsCached / rpsUncached).toFixed(2)}x`,
    );
    return 0;
  } catch (err) {
    console.error(err);
    return 1;
  } finally {
    await tier.stop();
  }
}

export { main };
