/**
 * Fault drills on the local twin of dev (Patroni-managed PostgreSQL behind PgBouncer,
 * Redis Cluster, nginx with the shipped nginx.conf, API pods with the Deployment's
 * env), with the twin's kubelet running every pod's probes and nginx's upstreams
 * following the Ready API pods. Each drill runs a bounded, paced request loop through
 * nginx from its own loopback source address, injects one fault, and prints requests
 * sent / failed, where each failure came from, and the data it checked afterwards.
 * One twin serves every drill; each drill leaves the topology whole again.
 */
import { readFileSync } from 'node:fs';
import { API_PREFIX, FAULT_ROUTES, SERVICE_ENV, SERVICE_METRICS, SERVICE_PATHS } from '../service/src/contract';
import { rejoinMember, waitReplicasFollow } from '../tools/runtime/launcher/patroni-drills';
import { resolveTwinHostnames, sampledScale, ScaleTraffic } from '../tools/runtime/launcher/redis-scale';
import { sleep, waitFor } from '../tools/runtime/launcher/processes';
import { type ApiPod, sumPodMetrics } from '../tools/runtime/twin/api-pods';
import { explainFailures } from '../tools/runtime/twin/failures';
import { timingsOf } from '../tools/runtime/twin/kubelet';
import { startTwin, type Twin } from '../tools/runtime/twin/twin';
import {
  isFailure,
  type RunningTraffic,
  startTraffic,
  summarize,
  type TrafficRequest,
  type TrafficResult,
} from '../tools/runtime/twin/traffic';

jest.setTimeout(120000);

/**
 * Outage lengths of the dependency drills: the issue's 60 s (primary) and 30 s (Redis), long enough
 * that the old readiness (primary `SELECT 1`, 2 x 5 s) would have dropped every pod several times
 * over. DRILL_PRIMARY_DOWN_SECONDS / DRILL_REDIS_DOWN_SECONDS shorten them for a quick local run.
 */
const PRIMARY_DOWN_MS = Number(process.env.DRILL_PRIMARY_DOWN_SECONDS ?? 60) * 1000;
const REDIS_DOWN_MS = Number(process.env.DRILL_REDIS_DOWN_SECONDS ?? 30) * 1000;

let twin: Twin;
let userIds: string[] = [];
const report: string[] = [];
/** A distinct client address per drill: the edge rate limit is per client IP. */
const client = (n: number) => `127.0.${100 + n}.1`;

/**
 * The drill's report line (`summarize`) and, when requests failed, where each kind came from:
 * the edge's access log for client `n` joined with the pods' logs (tools/runtime/twin/failures.ts).
 */
async function drillLine(n: number, name: string, r: TrafficResult, checked: string): Promise<string> {
  await twin.edge.flushLogs();
  const why = explainFailures(r.failed, client(n), { edgeLogPath: twin.edge.logPath, podLogDir: twin.wiring.logDir });
  return summarize(name, r, checked) + (why.length ? `; failures: ${why.join('; ')}` : '');
}

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

/** Index of the Patroni leader now. */
const leader = () => twin.postgres.leaderIndex();
const failedBetween = (t: RunningTraffic, from: number, to: number) =>
  t.outcomes().some((o) => o.at >= from && o.at <= to && isFailure(o));
/** Requests sent at or after `at` that have their outcome: a drill runs until it has enough evidence. */
const answeredSince = (t: RunningTraffic, at: number) => t.outcomes().filter((o) => o.at >= at).length;

async function missingRows(emails: string[]): Promise<string[]> {
  const rows = await appQuery<{ email: string }>('SELECT email FROM users WHERE email = ANY($1)', [emails]);
  const found = new Set(rows.map((r) => r.email));
  return emails.filter((e) => !found.has(e));
}

// A start still running when the hook times out (a loaded machine) is aborted and torn down in afterAll.
const starting = new AbortController();
let start: Promise<Twin> | undefined;

beforeAll(async () => {
  // FASTNEXT_TWIN_PODS=container runs the same drills on API pods from the built image.
  start = startTwin({
    env: 'dev',
    faultInjection: true,
    signal: starting.signal,
    pods: process.env.FASTNEXT_TWIN_PODS === 'container' ? 'container' : 'process',
  });
  twin = await start;
  report.push(
    `[drill] twin ready in ${twin.readyMs} ms; API pods (${twin.pods.length}, ${process.env.FASTNEXT_TWIN_PODS ?? 'process'}) Ready after ${twin.apiPods.map((k) => k.events.find((e) => e.type === 'ready')?.at).join(', ')} ms`,
  );
  await appQuery(
    `INSERT INTO users (email, username) SELECT 'seed-' || g || '@drill.test', 'seed-' || g FROM generate_series(1, 200) g`,
  );
  userIds = (await appQuery<{ id: string }>("SELECT id::text FROM users WHERE email LIKE 'seed-%' ORDER BY id")).map(
    (r) => r.id,
  );
}, 300000);

afterAll(async () => {
  starting.abort();
  await start?.catch(() => undefined);
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
  const AFTER = 150;
  const victim = twin.pods[0];
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(1),
    concurrency: CONCURRENCY,
    ratePerSecond: 60,
    maxRequests: 3000,
    maxMs: 40000,
    request: (i) => (i % 3 === 0 ? postUser('kill-api', i) : getUser(i)),
  });
  await sleep(2000);
  const killedAt = traffic.now();
  await victim.kill();
  // Enough answers after the kill to show nginx routing around it (a loaded machine takes longer).
  await waitFor(`${AFTER} answers after the kill`, () => answeredSince(traffic, killedAt) >= AFTER, 35000);
  const r = await traffic.stop();
  const missing = await missingRows(acknowledged(r.outcomes));
  report.push(
    await drillLine(
      1,
      'kill one API process',
      r,
      `${acknowledged(r.outcomes).length} acknowledged users all present (${missing.length} missing)`,
    ),
  );
  // The kubelet restarts the container (the first restart has no back-off) and its probes put it back.
  const pod = twin.apiPods.find((k) => k.name === victim.name)!;
  await pod.waitUntil(() => pod.restarts === 1 && pod.ready, 60000, 'restarted and Ready');
  await twin.endpoints.sync();

  expect(r.outcomes.filter((o) => o.at >= killedAt).length).toBeGreaterThanOrEqual(AFTER);
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
    await drillLine(
      2,
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
  const AFTER = 150;
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(3),
    concurrency: 8,
    ratePerSecond: 50,
    maxRequests: 3000,
    maxMs: 40000,
    // Search is never cached: every request reads a replica (through the read-only PgBouncer) or the primary.
    request: (i) => ({ method: 'GET', path: `/api/v1/users/search?q=seed-${1 + (i % 200)}&limit=5` }),
  });
  await sleep(1500);
  const stoppedAt = traffic.now();
  const current = await leader();
  const replica = twin.postgres.members.findIndex((_, i) => i !== current);
  await twin.postgres.stopMember(replica);
  // Enough reads after the stop to show they continue (a loaded machine takes longer to answer them).
  await waitFor(`${AFTER} answers after the stop`, () => answeredSince(traffic, stoppedAt) >= AFTER, 35000);
  const r = await traffic.stop();
  const empty = r.outcomes.filter(
    (o) => o.status === 200 && (JSON.parse(o.body) as { items: unknown[] }).items.length === 0,
  );
  report.push(
    await drillLine(
      3,
      'stop a PostgreSQL replica',
      r,
      `every search answered with rows (${empty.length} empty answers)`,
    ),
  );
  await twin.postgres.startMember(replica);
  await twin.postgres.waitHealthy();

  expect(r.outcomes.filter((o) => o.at >= stoppedAt).length).toBeGreaterThanOrEqual(AFTER);
  expect(r.failed).toEqual([]);
  expect(empty).toEqual([]);
});

test('kill the PostgreSQL leader (SIGKILL Patroni and PostgreSQL): writes come back without an API restart, no acknowledged write lost, reads keep working; the old leader rejoins through pg_rewind', async () => {
  await twin.postgres.waitHealthy();
  const writes = startTraffic({
    base: twin.url,
    localAddress: client(4),
    ratePerSecond: 20,
    maxRequests: 2000,
    maxMs: 60000,
    timeoutMs: 20000,
    request: (i) => postUser('pg-kill', i),
  });
  const reads = startTraffic({
    base: twin.url,
    localAddress: client(7),
    ratePerSecond: 20,
    maxRequests: 2000,
    maxMs: 60000,
    request: (i) => ({ method: 'GET', path: `/api/v1/users/search?q=seed-${1 + (i % 200)}&limit=5` }),
  });
  await sleep(2000);
  const victim = await leader();
  const killedAt = writes.now();
  await twin.postgres.killMember(victim);
  await waitFor('a new leader', async () => ![-1, victim].includes(await twin.postgres.leaderIndex()), 60000);
  // The first acknowledged write after the outage began.
  const firstWriteAt = await (async () => {
    for (;;) {
      const ok = writes
        .outcomes()
        .find((o) => o.at > killedAt && o.status === 201 && failedBetween(writes, killedAt, o.at));
      if (ok) return ok.at + ok.ms;
      if (writes.now() - killedAt > 55000) throw new Error('no write succeeded within 55 s of the kill');
      await sleep(200);
    }
  })();
  await sleep(3000);
  const [w, r] = await Promise.all([writes.stop(), reads.stop()]);
  const acks = acknowledged(w.outcomes);
  const missing = await missingRows(acks);
  const secondsToWrite = (firstWriteAt - killedAt) / 1000;
  const rejoin = await rejoinMember(twin.postgres, victim);
  // A replica that replayed the old timeline past the fork from the archive is restarted by the
  // twin's kubelet when its liveness check fails, and rewound, before the next drill.
  const diverged = (await waitReplicasFollow(twin.postgres)).filter((f) => f.diverged);
  report.push(
    await drillLine(
      4,
      'kill the PostgreSQL leader (writes)',
      w,
      `first acknowledged write ${secondsToWrite.toFixed(1)} s after SIGKILL; ${acks.length} acknowledged, ` +
        `${missing.length} missing; failed ${w.failed.length} (${[...new Set(w.failed.map((f) => f.status))].join(', ')}); ` +
        `old leader rejoined in ${rejoin.seconds.toFixed(1)} s (pg_rewind: ${rejoin.rewound})` +
        diverged.map((d) => `; ${d.member} diverged, streaming again after ${d.seconds.toFixed(1)} s`).join(''),
    ),
  );
  report.push(await drillLine(7, 'kill the PostgreSQL leader (reads)', r, `${r.failed.length} failed reads`));

  expect(secondsToWrite).toBeLessThan(30);
  expect(missing).toEqual([]);
  // Writes fail fast while there is no leader (503 from the API), never hang past the request timeout.
  // (As one list, so a failure shows each offending outcome, not only the first status.)
  expect(w.failed.filter((f) => f.status !== 503)).toEqual([]);
  expect(r.failed).toEqual([]);
  expect(rejoin.rewound).toBe(true);
  for (const d of diverged) expect(d.rewound).toBe(true);
  await twin.postgres.waitHealthy();
});

test('patronictl switchover under writes: failed writes are bounded by the switchover gap', async () => {
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(8),
    ratePerSecond: 20,
    maxRequests: 1000,
    maxMs: 40000,
    timeoutMs: 20000,
    request: (i) => postUser('switchover', i),
  });
  await sleep(1500);
  const from = await leader();
  const t0 = traffic.now();
  const sw = await twin.postgres.patronictl('switchover', '--leader', twin.postgres.members[from].name, '--force');
  await waitFor('a new leader', async () => ![-1, from].includes(await twin.postgres.leaderIndex()), 60000);
  await sleep(4000);
  const r = await traffic.stop();
  const acks = acknowledged(r.outcomes);
  const missing = await missingRows(acks);
  const during = r.outcomes.filter((o) => o.at >= t0);
  report.push(
    await drillLine(
      8,
      'patronictl switchover',
      r,
      `${r.failed.length} failed of ${during.length} sent from the switchover on; ${missing.length} of ${acks.length} acknowledged missing`,
    ),
  );
  expect(sw.output).toContain('Successfully switched over');
  // Bound: the writes of 5 s at this rate (DESIGN.md measured a 2-3 s gap).
  expect(r.failed.length).toBeLessThanOrEqual(5 * 20);
  for (const f of r.failed) expect(f.status).toBe(503);
  expect(missing).toEqual([]);
  await twin.postgres.waitHealthy();
});

test('kill a PgBouncer pod: failed requests are bounded, the other pod serves', async () => {
  const pool = twin.poolers[0];
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(9),
    ratePerSecond: 40,
    maxRequests: 400,
    maxMs: 8000,
    request: (i) => (i % 2 ? postUser('bouncer-kill', i) : getUser(i)),
  });
  await sleep(1500);
  const t0 = traffic.now();
  await pool.killPod(0);
  const r = await traffic.done;
  await pool.startPod(0);
  const acks = acknowledged(r.outcomes);
  const missing = await missingRows(acks);
  report.push(
    await drillLine(
      9,
      'kill a PgBouncer pod',
      r,
      `${r.failed.length} failed; ${missing.length} of ${acks.length} acknowledged missing`,
    ),
  );
  // Bound: the API pods' connections that were on the pod (one per pool in use) fail once each.
  expect(r.failed.length).toBeLessThanOrEqual(twin.pods.length * 2);
  expect(r.outcomes.filter((o) => o.at > t0 + 2000 && isFailure(o))).toEqual([]);
  expect(missing).toEqual([]);
});

test('scale the API to the HPA maximum: every pod connects through PgBouncer and PostgreSQL stays under max_connections', async () => {
  const max = twin.config.api.autoscaling.maxReplicas;
  const added: ApiPod[] = [];
  while (twin.pods.length < max) added.push(await twin.startPod());
  try {
    await scaledChecks(max);
  } finally {
    // Scale back down (the HPA's scale-down; no traffic left to drain): the next drills assume the minimum.
    await twin.deletePods(added, { gracePeriodSeconds: 0 });
  }
});

async function scaledChecks(max: number): Promise<void> {
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(10),
    concurrency: 16,
    ratePerSecond: 80,
    maxRequests: 400,
    maxMs: 8000,
    request: (i) => ({ method: 'GET', path: `/api/v1/users/search?q=seed-${1 + (i % 200)}&limit=5` }),
  });
  const r = await traffic.done;
  const per = await Promise.all(
    twin.postgres.members.map((m) =>
      twin.postgres.query<{ n: string; max: string }>(
        m,
        "SELECT count(*) AS n, current_setting('max_connections') AS max FROM pg_stat_activity WHERE backend_type = 'client backend'",
      ),
    ),
  );
  const deep = await Promise.all(
    twin.pods.map(
      async (p) =>
        (
          (await (await fetch(`http://${p.http.host}:${p.http.port}${SERVICE_PATHS.deep}`)).json()) as {
            status: string;
          }
        ).status,
    ),
  );
  report.push(
    await drillLine(
      10,
      `scale the API to ${max} pods`,
      r,
      `client backends per member ${per.map((x) => x[0].n).join(', ')} of max_connections ${per[0][0].max}; deep health ${deep.join(', ')}`,
    ),
  );
  expect(twin.pods).toHaveLength(max);
  expect(deep.every((d) => d === 'up')).toBe(true);
  expect(r.failed).toEqual([]);
  for (const x of per) expect(Number(x[0].n)).toBeLessThan(Number(x[0].max));
  // The pooler holds the server side: at most its pool per pod on the leader, whatever the API pod count.
  const b = twin.config.pgbouncer;
  expect(Math.max(...per.map((x) => Number(x[0].n)))).toBeLessThanOrEqual(
    b.replicas * (b.poolSize + b.reservePoolSize) + 10,
  );
}

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
    await drillLine(
      5,
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
    await drillLine(
      6,
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

/** Rotation changes (nginx reloads with another set) after `since` (epoch ms), and pods that went not-Ready. */
function rotationChurn(since: number) {
  const t0 = Date.now();
  return {
    changes: twin.endpoints.history.filter((h) => h.at > since).map((h) => h.pods.join(',')),
    notReady: twin.apiPods.flatMap((k) =>
      k.events
        .filter((e) => e.type === 'not-ready' && t0 - (k.now() - e.at) > since)
        .map((e) => `${k.name}: ${e.detail}`),
    ),
  };
}

/**
 * The pods of the primary's pool (PgBouncer `pgbouncer`, the API's POSTGRES_SERVER): SIGSTOP of them is the
 * primary unreachable from the API, a partition rather than a crash (connections open, nothing answers),
 * while Patroni keeps its leader (a frozen leader would be failed over: the leader-kill drill's case).
 */
const primaryPool = () => twin.poolers.find((p) => p.proxy.name === 'pgbouncer')!;
const primaryPoolPids = () => primaryPool().pods.map((_, i) => primaryPool().pid(i)!);
const signal = (pids: number[], sig: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // A backend that exited meanwhile.
    }
  }
};

const searchUsers = (i: number): TrafficRequest => ({
  method: 'GET',
  path: `/api/v1/users/search?q=seed-${1 + (i % 200)}&limit=5`,
});
const percentile = (ms: number[], p: number) => [...ms].sort((a, b) => a - b)[Math.floor((ms.length - 1) * p)] ?? 0;

test(
  'primary unreachable (SIGSTOP of its PgBouncer pods): cached and replica reads all succeed, writes fail fast with 503, no pod leaves rotation',
  async () => {
    const hot = 40;
    // GIVEN the hot users cached (one read each), and traffic mixing cached GETs, replica reads and writes
    for (let i = 0; i < hot; i++) {
      await (await fetch(`${twin.url}${getUser(i).path}`)).arrayBuffer();
      await sleep(15);
    }
    const traffic = startTraffic({
      base: twin.url,
      localAddress: client(11),
      concurrency: 8,
      ratePerSecond: 45,
      maxRequests: 100000,
      maxMs: PRIMARY_DOWN_MS + 20000,
      request: (i) => (i % 3 === 0 ? getUser(i % hot) : i % 3 === 1 ? searchUsers(i) : postUser('pg-frozen', i)),
    });
    await sleep(1000);
    const pids = primaryPoolPids();
    expect(pids.every((pid) => pid > 0)).toBe(true);
    const pausedWall = Date.now();
    const pausedAt = traffic.now();
    signal(pids, 'SIGSTOP');
    await sleep(PRIMARY_DOWN_MS);
    const resumingAt = traffic.now();
    signal(pids, 'SIGCONT');
    const resumedAt = traffic.now();
    // Long enough to see writes back within a readiness period, and a second of traffic after that period.
    const readinessPeriodMs = timingsOf(apiReadinessProbe()).periodSeconds * 1000;
    await sleep(readinessPeriodMs + 1000);
    const r = await traffic.stop();
    const churn = rotationChurn(pausedWall);

    const during = r.outcomes.filter((o) => o.at >= pausedAt && o.at < resumedAt);
    const cached = during.filter((o) => o.method === 'GET' && !o.path.includes('search'));
    const replica = during.filter((o) => o.path.includes('search'));
    // A write still waiting on the frozen pool when it resumes may go through (a CI run saw one 201):
    // the rule is for the writes answered while the pool was frozen.
    const posts = during.filter((o) => o.method === 'POST');
    const writes = posts.filter((o) => o.at + o.ms < resumingAt);
    const acrossResume = posts.filter((o) => o.at + o.ms >= resumingAt);
    const refused = writes.filter((o) => o.status === 503);
    const firstWriteBack = r.outcomes.find((o) => o.method === 'POST' && o.at >= resumedAt && o.status === 201);
    const acks = acknowledged(r.outcomes);
    const missing = await missingRows(acks);
    const readiness = timingsOf(apiReadinessProbe());
    // The frozen pods as their kubelet saw them (tcpSocket readiness, `kill -0` liveness).
    const frozen = twin.dataPods.filter((k) => primaryPool().pods.some((p) => p.name === k.name));
    const wallOf = (k: (typeof frozen)[number], at: number) => Date.now() - (k.now() - at);
    const frozenOut = frozen.flatMap((k) =>
      k.events.filter((e) => e.type === 'not-ready' && wallOf(k, e.at) > pausedWall).map(() => k.name),
    );
    // The same 503s as the edge timed them (request_time: first byte in to last byte out), beside the
    // client's own clock, which also counts the test process's scheduling on a loaded machine.
    await twin.edge.flushLogs();
    const edgeRefusedSeconds = readFileSync(twin.edge.logPath, 'utf8')
      .split('\n')
      .filter((l) => l.includes(`"remote_addr":"${client(11)}"`) && l.includes('"method":"POST"'))
      .map((l) => JSON.parse(l) as { status: number; request_time: number })
      .filter((l) => l.status === 503)
      .map((l) => l.request_time);
    report.push(
      await drillLine(
        11,
        `primary unreachable ${PRIMARY_DOWN_MS / 1000} s`,
        r,
        `cached GETs ${cached.filter((o) => o.status === 200).length}/${cached.length} ok, ` +
          `replica reads ${replica.filter((o) => o.status === 200).length}/${replica.length} ok, ` +
          `writes ${refused.length}/${writes.length} refused with 503 (p50 ${percentile(
            refused.map((o) => o.ms),
            0.5,
          )} ms, ` +
          `max ${Math.max(0, ...refused.map((o) => o.ms))} ms; at the edge max ${Math.max(0, ...edgeRefusedSeconds)} s); ` +
          `in flight across the resume: ${acrossResume.map((o) => o.status).join(', ') || 'none'}; rotation changes ${churn.changes.length}, not-Ready ${churn.notReady.length}; ` +
          `first write acknowledged ${firstWriteBack ? firstWriteBack.at - resumedAt : '-'} ms after resume; ` +
          `${acks.length} acknowledged writes, ${missing.length} missing; ` +
          `frozen PgBouncer pods not Ready during the freeze: ${frozenOut.join(', ') || 'none'}, ` +
          `restarts ${frozen.map((k) => k.restarts).join(', ')}; 503 body ${refused[refused.length - 1]?.body ?? '-'}`,
      ),
    );

    expect(cached.length).toBeGreaterThan(0);
    expect(cached.filter((o) => o.status !== 200)).toEqual([]);
    expect(replica.filter((o) => o.status !== 200)).toEqual([]);
    // Every write while the primary is frozen fails, each within 2 s, with 503 and the JSON error.
    expect(writes.length).toBeGreaterThan(0);
    for (const w of writes) {
      expect(w.status).toBe(503);
      expect(w.ms).toBeLessThan(2000);
      expect(JSON.parse(w.body)).toEqual({
        error: 'Service Unavailable',
        message: expect.stringMatching(/^the (primary )?database is (unreachable|unavailable)/),
      });
    }
    // One still waiting at the resume had not waited 2 s yet (so it too would have failed fast).
    for (const w of acrossResume) expect(resumingAt - w.at).toBeLessThan(2000);
    expect(churn).toEqual({ changes: [], notReady: [] });
    // After recovery, writes succeed within one readiness period, and every later one succeeds.
    expect(firstWriteBack).toBeDefined();
    expect(firstWriteBack!.at - resumedAt).toBeLessThanOrEqual(readiness.periodSeconds * 1000);
    const settled = resumedAt + readiness.periodSeconds * 1000;
    expect(r.outcomes.filter((o) => o.at > settled).filter(isFailure)).toEqual([]);
    expect(missing).toEqual([]);
  },
  60000 + PRIMARY_DOWN_MS * 2,
);

/** The api container's readiness probe as synthesized. */
function apiReadinessProbe() {
  const d = twin.objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'api')!.spec as {
    template: { spec: { containers: { name: string; readinessProbe: object; livenessProbe: object }[] } };
  };
  return d.template.spec.containers.find((c) => c.name === 'api')!.readinessProbe;
}
function apiLivenessProbe() {
  const d = twin.objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'api')!.spec as {
    template: { spec: { containers: { name: string; livenessProbe: object }[] } };
  };
  return d.template.spec.containers.find((c) => c.name === 'api')!.livenessProbe;
}

test(
  'all of Redis down (SIGSTOP): reads fall back to the database, no pod leaves rotation',
  async () => {
    const hot = 40;
    const traffic = startTraffic({
      base: twin.url,
      localAddress: client(12),
      concurrency: 8,
      ratePerSecond: 40,
      maxRequests: 100000,
      maxMs: REDIS_DOWN_MS + 15000,
      request: (i) => (i % 2 === 0 ? getUser(i % hot) : searchUsers(i)),
    });
    await sleep(2000);
    const pids = await Promise.all(
      twin.redis.nodes.map(async (_, i) =>
        Number(/process_id:(\d+)/.exec(await twin.redis.cli(i, 'info', 'server'))![1]),
      ),
    );
    const errorsBefore = (await sumPodMetrics(twin.pods, { errors: SERVICE_METRICS.cacheErrors })).errors;
    const pausedWall = Date.now();
    const pausedAt = traffic.now();
    signal(pids, 'SIGSTOP');
    await sleep(REDIS_DOWN_MS);
    signal(pids, 'SIGCONT');
    const resumedAt = traffic.now();
    const errorsDuring =
      (await sumPodMetrics(twin.pods, { errors: SERVICE_METRICS.cacheErrors })).errors - errorsBefore;
    await sleep(3000);
    const r = await traffic.stop();
    const churn = rotationChurn(pausedWall);
    const during = r.outcomes.filter((o) => o.at >= pausedAt && o.at < resumedAt);
    const before = r.outcomes.filter((o) => o.at < pausedAt);
    report.push(
      await drillLine(
        12,
        `all of Redis down ${REDIS_DOWN_MS / 1000} s`,
        r,
        `reads while down ${during.filter((o) => o.status === 200).length}/${during.length} ok, ` +
          `p50 ${percentile(
            during.map((o) => o.ms),
            0.5,
          )} ms, p99 ${percentile(
            during.map((o) => o.ms),
            0.99,
          )} ms, ` +
          `max ${Math.max(0, ...during.map((o) => o.ms))} ms (before: p50 ${percentile(
            before.map((o) => o.ms),
            0.5,
          )} ms); ` +
          `cache errors counted ${errorsDuring}; rotation changes ${churn.changes.length}, not-Ready ${churn.notReady.length}`,
      ),
    );
    await waitFor('Redis cluster healthy again', () => twin.redis.healthy(), 30000);

    expect(during.length).toBeGreaterThan(100);
    expect(r.failed).toEqual([]);
    expect(errorsDuring).toBeGreaterThan(0);
    // docs/health.md: with the cache unreachable a read costs at most two cache timeouts (get, then set:
    // 2 x 300 ms) more than before; compared by median, as the machine's own load moves both.
    const medianBefore = percentile(
      before.map((o) => o.ms),
      0.5,
    );
    expect(
      percentile(
        during.map((o) => o.ms),
        0.5,
      ) - medianBefore,
    ).toBeLessThanOrEqual(2 * 300 + 100);
    expect(churn).toEqual({ changes: [], notReady: [] });
  },
  60000 + REDIS_DOWN_MS * 2,
);

/** POSTs the fault route to one pod directly (the edge never routes to it on purpose). */
async function blockEventLoop(pod: ApiPod, seconds: number): Promise<void> {
  const res = await fetch(`http://${pod.http.host}:${pod.http.port}${API_PREFIX}${FAULT_ROUTES.blockEventLoop}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${twin.managementToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ seconds }),
  });
  expect(res.status).toBe(202);
}

test('readiness failing takes a pod out of rotation within failureThreshold x periodSeconds (+- a period); back after successThreshold successes', async () => {
  // GIVEN a pod in rotation, and the Deployment's readiness and liveness timings
  const readiness = timingsOf(apiReadinessProbe());
  const liveness = timingsOf(apiLivenessProbe());
  const k = twin.apiPods[twin.apiPods.length - 1];
  const restartsBefore = k.restarts;
  // Blocked for less than liveness needs to restart it (failureThreshold failures, a period apart).
  const blockSeconds = Math.min(15, (liveness.failureThreshold - 1) * liveness.periodSeconds - 1);
  expect(twin.endpoints.inRotation()).toContain(k.name);
  // WHEN its event loop is blocked (readiness times out) for blockSeconds
  const blockedAt = Date.now();
  await blockEventLoop(k.container!.pod, blockSeconds);
  await k.waitUntil(() => !k.ready, 30000, 'not Ready');
  await twin.endpoints.sync();
  const out = twin.endpoints.history.find((h) => h.at > blockedAt && !h.pods.includes(k.name))!;
  const unblockedAt = blockedAt + blockSeconds * 1000;
  await k.waitReady(30000);
  await twin.endpoints.sync();
  const back = twin.endpoints.history.find((h) => h.at > unblockedAt && h.pods.includes(k.name))!;
  const leftMs = out.at - blockedAt;
  const backMs = back.at - unblockedAt;
  const readyEvent = k.events.filter((e) => e.type === 'ready').pop()!;
  report.push(
    `[probe] readiness ${readiness.periodSeconds} s x ${readiness.failureThreshold} (timeout ${readiness.timeoutSeconds} s): ` +
      `out of rotation ${leftMs} ms after the block, back ${backMs} ms after it ended (${readyEvent.detail}); restarts ${k.restarts - restartsBefore}`,
  );

  // THEN out within failureThreshold x period, give or take one period (plus the reload), and back
  // after successThreshold successes, with no restart.
  const bound = readiness.failureThreshold * readiness.periodSeconds * 1000;
  expect(leftMs).toBeGreaterThanOrEqual(bound - readiness.periodSeconds * 1000);
  expect(leftMs).toBeLessThanOrEqual(bound + readiness.periodSeconds * 1000 + 1000);
  expect(readyEvent.detail).toBe(`${readiness.successThreshold} readiness successes`);
  expect(backMs).toBeLessThanOrEqual((readiness.successThreshold + 1) * readiness.periodSeconds * 1000 + 1000);
  expect(k.restarts).toBe(restartsBefore);
}, 90000);

test('an API pod with a blocked event loop: readiness takes it out first, liveness restarts it, no request fails beyond those in flight on it', async () => {
  const CONCURRENCY = 8;
  const k = twin.apiPods[0];
  const victim = k.container!.pod;
  const restartsBefore = k.restarts;
  const since = Date.now();
  const traffic = startTraffic({
    base: twin.url,
    localAddress: client(13),
    concurrency: CONCURRENCY,
    ratePerSecond: 40,
    maxRequests: 100000,
    maxMs: 120000,
    request: (i) => (i % 4 === 0 ? postUser('blocked', i) : getUser(i)),
  });
  await sleep(1500);
  const blockedAt = traffic.now();
  const blockedWall = Date.now();
  // WHEN its event loop blocks for good (only the kubelet's kill ends it)
  await blockEventLoop(victim, 3600);
  await k.waitUntil(() => k.restarts > restartsBefore && k.ready, 110000, 'restarted and Ready');
  await twin.endpoints.sync();
  await sleep(2000);
  const r = await traffic.stop();
  const removed = twin.endpoints.history.find((h) => h.at > since && !h.pods.includes(k.name))!;
  const removedAt = removed.at - (blockedWall - blockedAt);
  const killing = k.events.find((e) => e.type === 'killing' && k.now() - e.at < Date.now() - since)!;
  const killingAt = Date.now() - (k.now() - killing.at) - (blockedWall - blockedAt);
  const readyAgain = twin.endpoints.history.find((h) => h.at > removed.at && h.pods.includes(k.name))!;
  // Requests nginx sent to the blocked pod, from its access log (this drill's client address only).
  await twin.edge.flushLogs();
  const toVictim = readFileSync(twin.edge.logPath, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"remote_addr":"${client(13)}"`) && l.includes(`:${victim.http.port}`)).length;
  const missing = await missingRows(acknowledged(r.outcomes));
  report.push(
    await drillLine(
      13,
      'API pod with a blocked event loop',
      r,
      `out of rotation ${removedAt - blockedAt} ms after the block, liveness kill at ${killingAt - blockedAt} ms ` +
        `(${killing.detail}), back in rotation ${readyAgain.at - blockedWall} ms after the block; ` +
        `failed requests all in flight while it was blocked and in rotation: ${r.failed.every((f) => f.at + f.ms >= blockedAt && f.at <= removedAt)}; ` +
        `${toVictim} requests reached it via nginx; ${missing.length} acknowledged writes missing; ` +
        `upstream sets ${twin.endpoints.history
          .filter((h) => h.at > since)
          .map((h) => h.pods.join('+') || 'none')
          .join(
            ' -> ',
          )}; first failure ${r.failed[0] ? `${r.failed[0].status} ${r.failed[0].body || r.failed[0].error}` : '-'}`,
    ),
  );

  // THEN readiness took it out before liveness killed it, and it came back after a restart
  expect(removedAt).toBeLessThan(killingAt);
  expect(killing.detail).toMatch(/^liveness probe failed 3 times/);
  expect(k.restarts).toBe(restartsBefore + 1);
  // Only requests in flight on it fail (unanswered when the block began, or sent before it left rotation), at most one per worker.
  expect(r.failed.length).toBeLessThanOrEqual(CONCURRENCY);
  for (const f of r.failed) {
    // In flight on it: not answered before the block began, sent before it left rotation.
    expect(f.at + f.ms).toBeGreaterThanOrEqual(blockedAt);
    expect(f.at).toBeLessThanOrEqual(removedAt);
  }
  expect(r.outcomes.filter((o) => o.at > removedAt).filter(isFailure)).toEqual([]);
  expect(missing).toEqual([]);
}, 150000);

// The API pods find a new Redis node by the name it announces through the twin's DNS stand-in, a
// file that processes re-read on every lookup; container pods get their hosts entries once, at start.
(process.env.FASTNEXT_TWIN_PODS === 'container' ? test.skip : test)(
  'scale the Redis Cluster 3 -> 4 -> 3 masters under the API traffic loop: no failed request, every slot covered at every sample, no written key lost',
  async () => {
    const hot = 40;
    // The API degrades to the database when Redis fails it, so no failed request alone would not
    // show that the pods kept using Redis through the moves: their cache error counter must not move.
    const cacheStats = () =>
      sumPodMetrics(twin.pods, {
        errors: SERVICE_METRICS.cacheErrors,
        hits: SERVICE_METRICS.cacheHits,
        localHits: SERVICE_METRICS.cacheLocalHits,
        misses: SERVICE_METRICS.cacheMisses,
      });
    const before = await cacheStats();
    const since = Date.now();
    const traffic = startTraffic({
      base: twin.url,
      localAddress: client(14),
      concurrency: 4,
      ratePerSecond: 40,
      maxRequests: 20000,
      maxMs: 180000,
      request: (i) => (i % 5 === 0 ? postUser('redis-scale', i) : getUser(i % hot)),
    });
    // Beside the API, application clients that write keys without a TTL and read them back:
    // every acknowledged write must survive the slot moves.
    const unresolve = resolveTwinHostnames(twin.redis);
    const direct = new ScaleTraffic(twin.redis, 2);
    let out: Awaited<ReturnType<typeof sampledScale>>;
    let back: Awaited<ReturnType<typeof sampledScale>>;
    let lost: string[];
    let r: TrafficResult;
    try {
      await sleep(2000);
      out = await sampledScale(twin.redis, 4);
      await sleep(3000);
      back = await sampledScale(twin.redis, 3);
      await sleep(2000);
    } finally {
      lost = await direct.stop();
      r = await traffic.stop();
      unresolve();
    }
    const after = await cacheStats();
    const redisHits = after.hits - after.localHits - (before.hits - before.localHits);
    // What each counted cache error was, from the pods' own lines (the service logs op and error).
    const cacheErrorLines = twin.pods
      .flatMap((p) => p.log().split('\n'))
      .filter((l) => l.includes('"cache unavailable; using the database"'))
      .map((l) => JSON.parse(l) as { time: number; op: string; err: string })
      .filter((l) => l.time >= since)
      .map((l) => `${l.op}: ${l.err}`);
    const acked = acknowledged(r.outcomes);
    const missing = await missingRows(acked);
    report.push(
      await drillLine(
        14,
        'scale Redis 3 -> 4 -> 3 masters',
        r,
        `3 -> 4: nodes started in ${out.result.startMs} ms, reconcile ${out.result.reconcileMs} ms, ` +
          `${out.samples} coverage samples, ${out.uncovered.length} uncovered; ` +
          `4 -> 3: reconcile ${back.result.reconcileMs} ms, nodes stopped in ${back.result.stopMs} ms, ` +
          `${back.samples} coverage samples, ${back.uncovered.length} uncovered; ` +
          `direct clients: ${direct.writes} writes, ${direct.reads} reads, ${direct.failed.length} failed, ${lost.length} lost; ` +
          `API pods: ${after.errors - before.errors} cache errors` +
          (cacheErrorLines.length ? ` (${cacheErrorLines.join('; ')})` : '') +
          `, ${redisHits} Redis hits, ` +
          `${after.localHits - before.localHits} local hits, ${after.misses - before.misses} misses; ` +
          `${acked.length} acknowledged users all present (${missing.length} missing)`,
      ),
    );

    expect(r.failed).toEqual([]);
    // A pod that lost Redis would count an error for every lookup (hundreds here) and fall back to the
    // database silently. A lookup caught on a connection to a leaving node as it closes is answered from
    // the database too, the request still succeeds: 4 runs counted 0, a CI run (23a07ab) counted 1. Bounded, not
    // required to be 0, until the service retries such a read (issue note, 2026-12-07).
    expect(after.errors - before.errors).toBeLessThanOrEqual(3);
    expect(redisHits).toBeGreaterThan(0);
    expect(out.uncovered).toEqual([]);
    expect(back.uncovered).toEqual([]);
    expect(direct.failed).toEqual([]);
    expect(lost).toEqual([]);
    expect(direct.reads).toBeGreaterThan(100);
    expect(missing).toEqual([]);
    expect(twin.redis.topology.masters).toBe(3);
    expect(twin.redis.nodes).toHaveLength(6);
    expect(await twin.redis.healthy()).toBe(true);
  },
  240000,
);
