/**
 * `npm run bench`: HTTP benchmarks on the local twin of dev (not part of the test
 * suite). autocannon, 100 connections, through nginx and directly against one
 * API process, for a cached GET (Zipf s=1 over 10k users), an uncached read
 * (same route, cache bypassed, served by a replica) and a write; plus, in the
 * same run, a baseline (a minimal Fastify route returning a constant). Writes
 * bench/results.md (ratios against the baseline) and prints the table.
 *
 * Through nginx, the edge limits each client IP to 100 r/s. Each autocannon
 * connection here binds its own source address (127.0.200.x), so the limit is
 * in force but no single client reaches it; results.md says so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { SERVICE_ENV, SERVICE_METRICS } from '../../service/src/contract';
import { MIN_LSN_HEADER } from '../../service/src/http/consistency';
import type { ApiPod } from '../twin/api-pods';
import { startTwin, type Twin } from '../twin/twin';
import { renderResults, type CaseResult } from './report';
import { seededRandom, zipfSampler } from './zipf';

const ROOT = join(__dirname, '..', '..');
const KEYS = 10000;
const CONNECTIONS = 100;
const SOURCE_ADDRESSES = 100;
/** Cached-GET requests (same Zipf draw) before measuring, so the cache holds the working set. */
const WARM_UP_REQUESTS = 30000;

/**
 * Spreads autocannon's connections to `host:port` over SOURCE_ADDRESSES loopback
 * source addresses (autocannon has no such option; it calls net.connect(port, host)).
 */
function spreadSourceAddresses(host: string, port: number): () => void {
  // The module object itself (an `import * as` namespace is a copy under esbuild's CJS output).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const netModule = require('node:net') as typeof net;
  const original = netModule.connect;
  let n = 0;
  const patched = ((...args: unknown[]) => {
    // autocannon passes the port as the URL's string.
    if (String(args[0]) === String(port) && args[1] === host) {
      const localAddress = `127.0.200.${1 + (n++ % SOURCE_ADDRESSES)}`;
      return original({ port, host, localAddress });
    }
    return (original as (...a: unknown[]) => net.Socket)(...args);
  }) as typeof net.connect;
  (netModule as { connect: typeof net.connect }).connect = patched;
  return () => {
    (netModule as { connect: typeof net.connect }).connect = original;
  };
}

interface Counters {
  hits: number;
  misses: number;
  queries: number;
}

async function counters(pods: readonly ApiPod[]): Promise<Counters> {
  const sum: Counters = { hits: 0, misses: 0, queries: 0 };
  for (const p of pods) {
    const text = await (await fetch(`http://${p.metrics.host}:${p.metrics.port}/metrics`)).text();
    const values = (name: string) =>
      [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
    sum.hits += values(SERVICE_METRICS.cacheHits);
    sum.misses += values(SERVICE_METRICS.cacheMisses);
    sum.queries += values(SERVICE_METRICS.dbQueries);
  }
  return sum;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

type Kind = 'baseline' | 'cached GET' | 'uncached read' | 'write';

interface Target {
  readonly label: string;
  readonly url: string;
  /** Pods whose counters the case reads (none for the baseline). */
  readonly pods: readonly ApiPod[];
  readonly spread?: boolean;
}

async function runCase(
  kind: Kind,
  target: Target,
  length: { seconds: number } | { amount: number },
  requestFor: () => autocannon.Request,
): Promise<CaseResult> {
  const u = new URL(target.url);
  const restore = target.spread ? spreadSourceAddresses(u.hostname, Number(u.port)) : () => undefined;
  const before = await counters(target.pods);
  const latencies: number[] = [];
  try {
    const result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url: target.url,
          connections: CONNECTIONS,
          ...('amount' in length ? { amount: length.amount } : { duration: length.seconds }),
          requests: [{ setupRequest: (req) => ({ ...req, ...requestFor() }) }],
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      );
      instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
    });
    const after = await counters(target.pods);
    const sorted = Float64Array.from(latencies).sort();
    const lookups = after.hits - before.hits + (after.misses - before.misses);
    return {
      kind,
      target: target.label,
      requestsPerSecond: result.requests.total / result.duration,
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      total: result.requests.total,
      errors: result.errors + result.timeouts + result.non2xx,
      statuses: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([k, v]) => [k, v?.count ?? 0])),
      hitRatio: lookups > 0 ? (after.hits - before.hits) / lookups : undefined,
      queriesPerRequest: target.pods.length ? (after.queries - before.queries) / result.requests.total : undefined,
    };
  } finally {
    restore();
  }
}

function startBaseline(): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'tools', 'run.js'), join(__dirname, 'baseline-server.ts')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.once('exit', (code) => reject(new Error(`baseline server exited ${code}`)));
    child.stdout!.on('data', (d: Buffer) => {
      const m = /listening (\d+)/.exec(d.toString());
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}`, child });
    });
  });
}

async function seed(twin: Twin): Promise<string[]> {
  const c = await twin.postgres.connect();
  try {
    await c.query(
      `INSERT INTO users (email, username, full_name)
       SELECT 'bench-' || g || '@bench.test', 'bench-' || g, 'Bench User ' || g FROM generate_series(1, $1::int) g`,
      [KEYS],
    );
    const ids = (await c.query<{ id: string }>("SELECT id::text FROM users WHERE email LIKE 'bench-%' ORDER BY id"))
      .rows;
    const lsn = (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
    // Replicas must have the rows before reads start.
    for (const r of twin.postgres.replicas) {
      for (let i = 0; ; i++) {
        const [row] = await twin.postgres.query<{ ok: boolean }>(
          r,
          'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok',
          [lsn],
        );
        if (row.ok) break;
        if (i > 200) throw new Error(`${r.podName} did not replay ${lsn}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    // Rank k of the Zipf distribution -> a fixed shuffled id, so hot keys spread over every master.
    const shuffle = seededRandom(7);
    const out = ids.map((r) => r.id);
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(shuffle() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  } finally {
    await c.end();
  }
}

export async function main(argv: readonly string[] = []): Promise<number> {
  const seconds = Number(argv[argv.indexOf('--seconds') + 1] || process.env.BENCH_SECONDS || 10);
  const out = join(ROOT, 'bench', 'results.md');
  const log = (line: string) => console.log(line);
  const baseline = await startBaseline();
  let twin: Twin | undefined;
  const onSignal = () => void (twin?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    twin = await startTwin({ env: 'dev', log });
    const ids = await seed(twin);
    log(`[bench] seeded ${ids.length} users`);
    const cacheOff = await twin.startPod('api-cache-off', {
      overrides: { [SERVICE_ENV.cacheEnabled]: 'false' },
      rotation: false,
    });
    const podUrl = (p: ApiPod) => `http://${p.http.host}:${p.http.port}`;
    const edge: Target = { label: 'nginx (2 pods)', url: twin.url, pods: twin.pods, spread: true };
    const direct: Target = { label: 'one API process', url: podUrl(twin.pods[0]), pods: [twin.pods[0]] };
    const off: Target = { label: 'one API process, cache off', url: podUrl(cacheOff), pods: [cacheOff] };

    const zipf = zipfSampler(KEYS, 1, seededRandom(42));
    const uniform = seededRandom(43);
    const cached = (): autocannon.Request => ({ method: 'GET', path: `/api/v1/users/${ids[zipf()]}` });
    // Same route and rows; the min-LSN header (read-your-writes) bypasses the shared cache,
    // and 0/0 is replayed by every replica, so a replica serves it.
    const uncached = (): autocannon.Request => ({
      method: 'GET',
      path: `/api/v1/users/${ids[Math.floor(uniform() * KEYS)]}`,
      headers: { [MIN_LSN_HEADER]: '0/0' },
    });
    let w = 0;
    const runId = Date.now().toString(36);
    const write = (): autocannon.Request => {
      const n = w++;
      return {
        method: 'POST',
        path: '/api/v1/users',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: `w-${runId}-${n}@bench.test`, username: `w-${runId}-${n}` }),
      };
    };

    const results: CaseResult[] = [];
    const run = async (kind: Kind, target: Target, req: () => autocannon.Request, warm = false) => {
      const length = warm ? { amount: WARM_UP_REQUESTS } : { seconds };
      log(
        `[bench] ${warm ? 'warm-up: ' : ''}${kind} -> ${target.label}, ${CONNECTIONS} connections, ${JSON.stringify(length)}`,
      );
      const r = await runCase(kind, target, length, req);
      if (!warm) results.push(r);
      log(
        `[bench]   ${r.requestsPerSecond.toFixed(0)} req/s, p95 ${r.p95.toFixed(1)} ms, errors ${r.errors}, statuses ${JSON.stringify(r.statuses)}`,
      );
    };
    await run('baseline', { label: 'minimal Fastify route', url: baseline.url, pods: [] }, () => ({
      method: 'GET',
      path: '/',
    }));
    // Fill the cache from the same distribution first (both pods through nginx).
    await run('cached GET', edge, cached, true);
    await run('cached GET', edge, cached);
    await run('cached GET', direct, cached);
    await run('cached GET', off, cached);
    await run('uncached read', edge, uncached);
    await run('uncached read', direct, uncached);
    await run('write', edge, write);
    await run('write', direct, write);

    const md = renderResults({
      results,
      cores: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      seconds,
      connections: CONNECTIONS,
      keys: KEYS,
      warmUpRequests: WARM_UP_REQUESTS,
      sourceAddresses: SOURCE_ADDRESSES,
      rateLimit: twin.config.edge.rateLimit,
      logLevel: twin.pods[0].env[SERVICE_ENV.logLevel],
      date: new Date().toISOString(),
    });
    const fs = await import('node:fs');
    fs.mkdirSync(join(ROOT, 'bench'), { recursive: true });
    fs.writeFileSync(out, md);
    console.log(`\n${md}\nwritten to ${out}`);
    return 0;
  } finally {
    await twin?.stop();
    baseline.child.removeAllListeners('exit');
    baseline.child.kill('SIGTERM');
  }
}
