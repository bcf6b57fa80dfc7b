/**
 * Fault drills on the local twin of dev (real PostgreSQL, Redis Cluster, nginx
 * with the shipped nginx.conf, API processes with the Deployment's env). Each
 * drill runs a bounded, paced request loop through nginx from its own loopback
 * source address, injects one fault, and prints requests sent / failed and the
 * data it checked afterwards. One twin serves every drill; each drill leaves
 * the topology whole again (restarted pod, node, replica).
 */
import { SERVICE_ENV, SERVICE_METRICS } from '../service/src/contract';
import { sumPodMetrics } from '../tools/runtime/twin/api-pods';
import { startTwin, type Twin } from '../tools/runtime/twin/twin';
import { isFailure, startTraffic, summarize, type TrafficRequest } from '../tools/runtime/twin/traffic';
import { sleep } from '../tools/runtime/launcher/processes';

jest.setTimeout(120000);

let twin: Twin;
let userIds: string[] = [];
const report: string[] = [];
/** A distinct client address per drill: the edge rate limit is per client IP. */
const client = (n: number) => `127.0.${100 + n}.1`;

async function appQuery<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = await twin.postgres.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Sum over every pod of the cache hit and miss counters. */
function cacheCounters(): Promise<{ hits: number; misses: number }> {
  return sumPodMetrics(twin.pods, { hits: SERVICE_METRICS.cacheHits, misses: SERVICE_METRICS.cacheMisses });
}

const getUser = (i: number): TrafficRequest => ({
  method: 'GET',
  path: `/api/v1/users/${userIds[i % userIds.length]}`,
});
const postUser = (tag: string, i: number): TrafficRequest => ({
  method: 'POST',
  path: '/api/v1/users',
  body: { email: `${tag}-${i}@drill.test`, username: `${tag}-${i}` },
});
/** Emails of the users whose creation was acknowledged (201). */
const acknowledged = (outcomes: { method: string; status: number; body: string }[]) =>
  outcomes
    .filter((o) => o.method === 'POST' && o.status === 201)
    .map((o) => (JSON.parse(o.body) as { email: string }).email);

async function missingRows(emails: string[]): Promise<string[]> {
  const rows = await appQuery<{ email: string }>('SELECT email FROM users WHERE email = ANY($1)', [emails]);
  const found = new Set(rows.map((r) => r.email));
  return emails.filter((e) => !found.has(e));
}

beforeAll(async () => {
  // FASTNEXT_TWIN_PODS=container runs the same drills on API pods from the built image.
  twin = await startTwin({
    env: 'dev',
    pods: process.env.FASTNEXT_TWIN_PODS === 'container' ? 'container' : 'process',
  });
  report.push(
    `[drill] twin ready in ${twin.readyMs} ms; API pods (${twin.pods.length}, ${process.env.FASTNEXT_TWIN_PODS ?? 'process'}) started in ${twin.pods.map((p) => p.startMs).join(', ')} ms`,
  );
  await appQuery(
    `INSERT INTO users (email, username) SELECT 'seed-' || g || '@drill.test', 'seed-' || g FROM generate_series(1, 200) g`,
  );
  userIds = (await appQuery<{ id: string }>("SELECT id::text FROM users WHERE email LIKE 'seed-%' ORDER BY id")).map(
    (r) => r.id,
  );
}, 120000);

afterAll(async () => {
  await twin?.stop();
  console.log(report.join('\n'));
});

test('kill one API process: nginx routes around it; failures <= requests in flight on it; none after', async () => {
  // Bound: each of the loop's 8 workers has at most one request in flight, so at most 8
  // requests can be on the killed process when it dies. GETs among them are retried on the
  // other pod (proxy_next_upstream error timeout); a POST already sent is not (nginx never
  // replays a non-idempotent request), and a connect to the dead port is refused before
  // anything is sent, so it is retried too. Hence: failures <= 8, all of them POSTs that
  // started before the kill.
  const CONCURRENCY = 8;
  const victim = twin.pods[0];
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(1),
    concurrency: CONCURRENCY,
    ratePerSecond: 60,
    maxRequests: 600,
    maxMs: 7000,
    request: (i) => (i % 3 === 0 ? postUser('kill-api', i) : getUser(i)),
  });
  await sleep(2000);
  const killedAt = traffic.now();
  await victim.kill();
  const r = await traffic.done;
  const missing = await missingRows(acknowledged(r.outcomes));
  report.push(
    summarize(
      'kill one API process',
      r,
      `${acknowledged(r.outcomes).length} acknowledged users all present (${missing.length} missing)`,
    ),
  );
  await twin.restartPod(victim);

  // Enough traffic after the kill to show nginx routing around the dead process.
  expect(r.outcomes.filter((o) => o.at > killedAt).length).toBeGreaterThan(100);
  expect(r.failed.length).toBeLessThanOrEqual(CONCURRENCY);
  for (const f of r.failed) {
    expect(f.method).toBe('POST');
    expect(f.at).toBeLessThanOrEqual(killedAt + 50);
  }
  expect(r.outcomes.filter((o) => o.at > killedAt + 50).filter(isFailure)).toEqual([]);
  expect(missing).toEqual([]);
});

test('kill a Redis master: reads keep succeeding, failover completes, hit ratio recovers', async () => {
  const nodes = twin.redis.nodes;
  // A master killed before its replica synced is never failed over: wait for every link.
  const roles = await Promise.all(nodes.map(async (_, i) => twin.redis.cli(i, 'info', 'replication')));
  expect(
    roles.filter((info) => info.includes('role:slave')).every((info) => info.includes('master_link_status:up')),
  ).toBe(true);
  const victim = roles.findIndex((info) => info.includes('role:master'));
  const witness = roles.findIndex((info, i) => i !== victim && info.includes('role:master'));
  const hot = 40;
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(2),
    ratePerSecond: 50,
    maxRequests: 1500,
    maxMs: 25000,
    request: (i) => getUser(i % hot),
  });
  await sleep(2000);
  const atKill = await cacheCounters();
  await twin.redis.killNode(victim);
  const killedAt = traffic.now();
  const victimAddr = `${nodes[victim].host}:${nodes[victim].port}@`;
  await (async () => {
    for (;;) {
      const info = await twin.redis.cli(witness, 'cluster', 'info');
      const table = await twin.redis.cli(witness, 'cluster', 'nodes');
      const victimLine = table.split('\n').find((l) => l.includes(victimAddr)) ?? '';
      if (info.includes('cluster_state:ok') && victimLine.includes('fail') && !victimLine.includes('fail?')) return;
      if (traffic.now() > 20000)
        throw new Error(`no failover after ${traffic.now() - killedAt} ms:\n${info}\n${table}`);
      await sleep(200);
    }
  })();
  const failoverMs = traffic.now() - killedAt;
  const atFailover = await cacheCounters();
  const during = (atFailover.hits - atKill.hits) / (atFailover.hits - atKill.hits + atFailover.misses - atKill.misses);
  // The client refreshes its slot map on the next error or within its refresh interval.
  await sleep(5000);
  const before = await cacheCounters();
  await sleep(3000);
  const after = await cacheCounters();
  const r = await traffic.stop();
  const ratio = (after.hits - before.hits) / (after.hits - before.hits + after.misses - before.misses);
  report.push(
    summarize(
      'kill a Redis master',
      r,
      `failover in ${failoverMs} ms, hit ratio ${(during * 100).toFixed(1)} % while failing over, ` +
        `${(ratio * 100).toFixed(1)} % over the last 3 s`,
    ),
  );
  await twin.redis.startNode(victim);

  expect(r.failed).toEqual([]);
  expect(r.outcomes.every((o) => o.status === 200)).toBe(true);
  expect(ratio).toBeGreaterThanOrEqual(0.9);
});

test('stop a PostgreSQL replica: reads continue with zero failures', async () => {
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(3),
    concurrency: 8,
    ratePerSecond: 50,
    maxRequests: 400,
    maxMs: 6000,
    // Search is never cached: every request reads a replica (or the primary).
    request: (i) => ({ method: 'GET', path: `/api/v1/users/search?q=seed-${1 + (i % 200)}&limit=5` }),
  });
  await sleep(1500);
  const stoppedAt = traffic.now();
  await twin.postgres.stopReplica(0);
  const r = await traffic.done;
  const empty = r.outcomes.filter(
    (o) => o.status === 200 && (JSON.parse(o.body) as { items: unknown[] }).items.length === 0,
  );
  report.push(
    summarize('stop a PostgreSQL replica', r, `every search answered with rows (${empty.length} empty answers)`),
  );
  await twin.postgres.startReplica(0);

  expect(r.outcomes.filter((o) => o.at > stoppedAt).length).toBeGreaterThan(100);
  expect(r.failed).toEqual([]);
  expect(empty).toEqual([]);
});

test('restart the PostgreSQL primary: writes fail fast with 503 while down, succeed after, no acknowledged write lost', async () => {
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(4),
    ratePerSecond: 40,
    maxRequests: 2000,
    maxMs: 60000,
    request: (i) => postUser('pg-restart', i),
  });
  await sleep(1500);
  const downAt = traffic.now();
  await twin.postgres.restartPrimary();
  const upAt = traffic.now();
  await sleep(4000);
  const r = await traffic.stop();
  const acks = acknowledged(r.outcomes);
  const missing = await missingRows(acks);
  const [{ n: rows }] = await appQuery<{ n: string }>(
    "SELECT count(*) AS n FROM users WHERE email LIKE 'pg-restart-%'",
  );
  const unavailable = r.outcomes.filter((o) => o.status === 503);
  report.push(
    summarize(
      'restart the PostgreSQL primary',
      r,
      `down ${upAt - downAt} ms; ${acks.length} acknowledged writes, ${rows} rows, ${missing.length} missing; ` +
        `503s took at most ${Math.max(0, ...unavailable.map((o) => o.ms))} ms; 503 body ${unavailable[0]?.body ?? '-'}`,
    ),
  );

  expect(unavailable.length).toBeGreaterThan(0);
  for (const f of r.failed) {
    expect(f.status).toBe(503);
    expect(f.ms).toBeLessThan(2000);
    expect(JSON.parse(f.body)).toMatchObject({ error: 'Service Unavailable' });
  }
  // Requests after the primary is back (and the pools have replaced dead connections) succeed.
  expect(r.outcomes.filter((o) => o.at > upAt + 2000).filter((o) => o.status !== 201)).toEqual([]);
  expect(missing).toEqual([]);
  expect(Number(rows)).toBeGreaterThanOrEqual(acks.length);
});

test('a burst above the edge rate limit gets 429 and no 5xx', async () => {
  const { requestsPerSecond, burst } = twin.config.edge.rateLimit;
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(5),
    // More requests in flight at once than the limit admits in a second (rate + burst), so the
    // limit is exceeded however slowly a loaded machine answers.
    concurrency: 2 * (requestsPerSecond + burst),
    ratePerSecond: 100000,
    maxRequests: 3 * (requestsPerSecond + burst),
    maxMs: 10000,
    request: (i) => getUser(i),
  });
  const r = await traffic.done;
  const limited = r.outcomes.filter((o) => o.status === 429);
  const ok = r.outcomes.filter((o) => o.status === 200).length;
  report.push(
    summarize(
      'burst above the edge rate limit',
      r,
      `${ok} answered, ${limited.length} limited, body ${limited[0]?.body}`,
    ),
  );

  expect(r.failed).toEqual([]);
  expect(limited.length).toBeGreaterThan(0);
  expect(JSON.parse(limited[0].body)).toEqual({
    error: 'Too Many Requests',
    message: 'rate limit exceeded; retry after the time in Retry-After',
    field: 'request',
  });
  // nginx admits the burst plus the rate over the elapsed time (plus one for rounding).
  expect(ok).toBeGreaterThanOrEqual(burst);
  expect(ok).toBeLessThanOrEqual(burst + Math.ceil((requestsPerSecond * r.durationMs) / 1000) + 1);
});

test('rolling restart of every API process with the Deployment drain: zero failed requests', async () => {
  const before = twin.pods.map((p) => p.name + ':' + p.pid);
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(6),
    ratePerSecond: 40,
    maxRequests: 4000,
    maxMs: 90000,
    request: (i) => (i % 4 === 0 ? postUser('rolling', i) : getUser(i)),
  });
  await sleep(1000);
  const rollout = await twin.rollingRestart();
  await sleep(1000);
  const r = await traffic.stop();
  const missing = await missingRows(acknowledged(r.outcomes));
  report.push(
    summarize(
      'rolling restart',
      r,
      `replaced ${rollout.replaced.join(', ')}; drains took ${rollout.drainMs.join(', ')} ms, exit codes ${rollout.exitCodes.join(', ')}; ` +
        `${acknowledged(r.outcomes).length} acknowledged users, ${missing.length} missing`,
    ),
  );

  // GIVEN the Deployment's drain: preStop `sleep N`, then SHUTDOWN_DRAIN_SECONDS of failing readiness.
  const container = (
    twin.objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'api')!.spec as {
      template: {
        spec: {
          containers: {
            env: { name: string; value: string }[];
            lifecycle: { preStop: { exec: { command: string[] } } };
          }[];
        };
      };
    }
  ).template.spec.containers[0];
  const preStopSeconds = Number(container.lifecycle.preStop.exec.command[1]);
  const drainSeconds = Number(container.env.find((e) => e.name === SERVICE_ENV.shutdownDrainSeconds)!.value);
  expect(rollout.drainMs.every((ms) => ms >= (preStopSeconds + drainSeconds) * 1000)).toBe(true);
  expect(twin.pods.map((p) => p.name + ':' + p.pid)).not.toEqual(before);
  expect(r.failed).toEqual([]);
  expect(rollout.exitCodes.every((c) => c === 0)).toBe(true);
  expect(missing).toEqual([]);
});
