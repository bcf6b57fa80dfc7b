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
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { SERVICE_ENV, SERVICE_METRICS } from '../../service/src/contract';
import { issuePosition, MIN_LSN_HEADER } from '../../service/src/http/consistency';
import { loadEnvironment } from '../../stacks/environments';
import { type ApiPod, sumPodMetrics } from '../runtime/twin/api-pods';
import { startTwin, type Twin } from '../runtime/twin/twin';
import { fillSections } from '../manifests/readme';
import { type ComponentRoots, componentPids, cpuSeconds, cpuSnapshot } from './cpu';
import { perfAvailable, profileEnv, type ProfileSummary, startPerf, startProfile, stopProfile } from './profile';
import { intOption, renderResults, RESULTS_SECTION, resultTables, type CaseResult } from './report';
import { seededRandom, zipfSampler } from './zipf';

const ROOT = join(__dirname, '..', '..');
export const KEYS = 10000;
const CONNECTIONS = 100;
const SOURCE_ADDRESSES = 100;
/** Cached-GET requests (same Zipf draw) before measuring, so the cache holds the working set. */
export const WARM_UP_REQUESTS = 30000;

/**
 * Spreads autocannon's connections to `host:port` over SOURCE_ADDRESSES loopback
 * source addresses (autocannon has no such option; it calls net.connect(port, host)).
 */
export function spreadSourceAddresses(host: string, port: number): () => void {
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
  /** Of the hits, those the in-process tier answered. */
  localHits: number;
  misses: number;
  queries: number;
}

function counters(pods: readonly ApiPod[]): Promise<Counters> {
  return sumPodMetrics(pods, {
    hits: SERVICE_METRICS.cacheHits,
    localHits: SERVICE_METRICS.cacheLocalHits,
    misses: SERVICE_METRICS.cacheMisses,
    queries: SERVICE_METRICS.dbQueries,
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

type Kind = 'baseline' | 'cached GET' | 'uncached read' | 'write';

export interface Target {
  readonly label: string;
  readonly url: string;
  /** Pods whose counters the case reads (none for the baseline). */
  readonly pods: readonly ApiPod[];
  readonly spread?: boolean;
}

/** One autocannon run of one case: raw figures, aggregated over rounds by `aggregate`. */
export interface Sample {
  readonly requestsPerSecond: number;
  readonly latencies: number[];
  readonly total: number;
  readonly errors: number;
  readonly statuses: Record<string, number>;
  readonly delta: Counters;
  /** CPU seconds by component during the run (tools/bench/cpu.ts). */
  readonly cpu: Record<string, number>;
  readonly seconds: number;
}

export async function measure(
  target: Target,
  length: { seconds: number } | { amount: number },
  requestFor: () => autocannon.Request,
  components: Readonly<Record<string, ComponentRoots>> = {},
  /** A fixed total rate (req/s) instead of each connection sending as soon as it is answered. */
  rate?: number,
): Promise<Sample> {
  const u = new URL(target.url);
  const restore = target.spread ? spreadSourceAddresses(u.hostname, Number(u.port)) : () => undefined;
  const before = await counters(target.pods);
  const latencies: number[] = [];
  try {
    const cpuBefore = cpuSnapshot(components);
    const result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url: target.url,
          connections: CONNECTIONS,
          ...('amount' in length ? { amount: length.amount } : { duration: length.seconds }),
          ...(rate ? { overallRate: rate } : {}),
          requests: [{ setupRequest: (req) => ({ ...req, ...requestFor() }) }],
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      );
      instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
    });
    const cpu = cpuSeconds(cpuBefore, cpuSnapshot(components));
    const after = await counters(target.pods);
    return {
      cpu,
      seconds: result.duration,
      requestsPerSecond: result.requests.total / result.duration,
      latencies,
      total: result.requests.total,
      errors: result.errors + result.timeouts + result.non2xx,
      statuses: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([k, v]) => [k, v?.count ?? 0])),
      delta: {
        hits: after.hits - before.hits,
        localHits: after.localHits - before.localHits,
        misses: after.misses - before.misses,
        queries: after.queries - before.queries,
      },
    };
  } finally {
    restore();
  }
}

/** Median req/s over the rounds (the machine is shared); latencies, errors and counters over all of them. */
function aggregate(kind: Kind, target: Target, samples: readonly Sample[]): CaseResult {
  const rates = samples.map((x) => x.requestsPerSecond);
  const sorted = Float64Array.from(samples.flatMap((x) => x.latencies)).sort();
  const sum = (f: (x: Sample) => number) => samples.reduce((a, x) => a + f(x), 0);
  const total = sum((x) => x.total);
  const lookups = sum((x) => x.delta.hits + x.delta.misses);
  const statuses: Record<string, number> = {};
  for (const x of samples) for (const [k, n] of Object.entries(x.statuses)) statuses[k] = (statuses[k] ?? 0) + n;
  const cpu: Record<string, number> = {};
  for (const x of samples) for (const [k, v] of Object.entries(x.cpu)) cpu[k] = (cpu[k] ?? 0) + v;
  return {
    kind,
    target: target.label,
    cpuPerRequest: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, (v * 1e6) / total])),
    machineBusy: Object.values(cpu).reduce((a, b) => a + b, 0) / (sum((x) => x.seconds) * os.cpus().length),
    requestsPerSecond: [...rates].sort((a, b) => a - b)[Math.floor(rates.length / 2)],
    rounds: rates,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    total,
    errors: sum((x) => x.errors),
    statuses,
    hitRatio: lookups > 0 ? sum((x) => x.delta.hits) / lookups : undefined,
    localShare: lookups > 0 ? sum((x) => x.delta.localHits) / lookups : undefined,
    queriesPerRequest: target.pods.length ? sum((x) => x.delta.queries) / total : undefined,
  };
}

/** The baseline server; `env` is added to this process's (the A/B bench's profiler). */
export function startBaseline(env: Record<string, string> = {}): Promise<BenchServer> {
  return startBenchServer('baseline-server.ts', [], env);
}

export interface BenchServer {
  readonly url: string;
  readonly child: ChildProcess;
  /** SIGTERM, without taking its exit for a failure. */
  stop(): void;
}

/**
 * Runs a bench server script of this directory (tools/run.js), which prints `listening <port>` once it
 * accepts connections; whatever it writes to stdout after that (log lines) is read and dropped.
 */
export function startBenchServer(
  script: string,
  args: readonly string[] = [],
  env: Record<string, string> = {},
): Promise<BenchServer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'tools', 'run.js'), join(__dirname, script), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)));
    let head: string | undefined = '';
    child.stdout!.on('data', (d: Buffer) => {
      if (head === undefined) return; // listening: the rest is log lines
      head += d.toString();
      const m = /listening (\d+)/.exec(head);
      if (m) {
        head = undefined;
        const stop = () => {
          child.removeAllListeners('exit');
          child.kill('SIGTERM');
        };
        resolve({ url: `http://127.0.0.1:${m[1]}`, child, stop });
      }
    });
  });
}

export async function seed(twin: Twin): Promise<string[]> {
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
        if (i > 200) throw new Error(`${r.name} did not replay ${lsn}`);
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
  const option = (name: string, fallback: number) => intOption(argv, name, fallback);
  const seconds = option('--seconds', 5);
  const rounds = option('--rounds', 3);
  const out = join(ROOT, 'bench', 'results.md');
  const log = (line: string) => console.log(line);
  // Every Node process of the run loads the profiler's preload, idle until a profiled run signals it.
  const profileDir = fs.mkdtempSync(join(os.tmpdir(), 'fastnext-bench-profiles-'));
  const profiled = profileEnv(profileDir);
  const baseline = await startBaseline(profiled);
  let twin: Twin | undefined;
  const onSignal = () => void (twin?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    twin = await startTwin({ env: 'dev', log, apiOverrides: profiled });
    const ids = await seed(twin);
    log(`[bench] seeded ${ids.length} users`);
    const cacheOff = await twin.startPod('api-cache-off', {
      overrides: { [SERVICE_ENV.cacheEnabled]: 'false' },
      rotation: false,
    });
    // Diagnostic only (not a shipped setting): how much of the gap to the baseline is per-request logging.
    const quiet = await twin.startPod('api-log-warn', {
      overrides: { [SERVICE_ENV.logLevel]: 'warn' },
      rotation: false,
    });
    const podUrl = (p: ApiPod) => `http://${p.http.host}:${p.http.port}`;
    // Each connection is one client (its own source address), subject to the edge's per-client limit.
    const edge: Target = { label: 'nginx (2 pods)', url: twin.url, pods: twin.pods, spread: true };
    const direct: Target = { label: 'one API process', url: podUrl(twin.pods[0]), pods: [twin.pods[0]] };
    const off: Target = { label: 'one API process, cache off', url: podUrl(cacheOff), pods: [cacheOff] };
    const warnOnly: Target = {
      label: 'one API process, LOG_LEVEL=warn (diagnostic)',
      url: podUrl(quiet),
      pods: [quiet],
    };

    const zipf = zipfSampler(KEYS, 1, seededRandom(42));
    const uniform = seededRandom(43);
    const cached = (): autocannon.Request => ({ method: 'GET', path: `/api/v1/users/${ids[zipf()]}` });
    // Same route and rows; a read-your-writes position bypasses the shared cache, and 0/0 is replayed
    // by every replica, so a replica serves it. The service trusts only positions it signed (a write's
    // token, valid for seconds), so the bench signs 0/0 with the twin's key, anew every second.
    let position = { token: '', at: 0 };
    const signedPosition = () => {
      if (Date.now() - position.at > 1000) {
        position = { token: issuePosition('0/0', twin!.managementToken), at: Date.now() };
      }
      return position.token;
    };
    const uncached = (): autocannon.Request => ({
      method: 'GET',
      path: `/api/v1/users/${ids[Math.floor(uniform() * KEYS)]}`,
      headers: { [MIN_LSN_HEADER]: signedPosition() },
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

    // Whose CPU each run is charged to (the load generator, this process, is 'client').
    const components: Record<string, ComponentRoots> = {
      baseline: { pids: () => [baseline.child.pid!] },
      edge: { dir: twin.edge.dir },
      api: { pids: () => [...twin!.pods, cacheOff, quiet].map((p) => p.pid) },
      redis: { dir: twin.redis.dir },
      postgres: { dir: twin.postgres.dir },
    };
    const cases: { kind: Kind; target: Target; req: () => autocannon.Request }[] = [
      {
        kind: 'baseline',
        target: { label: 'minimal Fastify route', url: baseline.url, pods: [] },
        req: () => ({ method: 'GET', path: '/' }),
      },
      { kind: 'cached GET', target: edge, req: cached },
      { kind: 'cached GET', target: direct, req: cached },
      { kind: 'cached GET', target: off, req: cached },
      { kind: 'cached GET', target: warnOnly, req: cached },
      { kind: 'uncached read', target: edge, req: uncached },
      { kind: 'uncached read', target: direct, req: uncached },
      { kind: 'write', target: edge, req: write },
      { kind: 'write', target: direct, req: write },
    ];
    // Fill the cache from the same distribution first (both pods through nginx).
    log(`[bench] warm-up: ${WARM_UP_REQUESTS} cached GETs through nginx`);
    await measure(edge, { amount: WARM_UP_REQUESTS }, cached);
    // Rounds interleave the cases, so a noisy neighbour on this shared machine hits them all alike.
    const samples = cases.map((): Sample[] => []);
    for (let round = 1; round <= rounds; round++) {
      for (const [i, c] of cases.entries()) {
        const x = await measure(c.target, { seconds }, c.req, components);
        samples[i].push(x);
        log(
          `[bench] round ${round}/${rounds} ${c.kind} -> ${c.target.label}: ${x.requestsPerSecond.toFixed(0)} req/s, ` +
            `errors ${x.errors}, statuses ${JSON.stringify(x.statuses)}`,
        );
      }
    }
    const results = cases.map((c, i) => aggregate(c.kind, c.target, samples[i]));
    // An uncached read that the cache answered measures the wrong thing (it did, unnoticed, once the
    // service began to ignore unsigned positions): refuse to write such results.
    for (const r of results.filter((x) => x.kind === 'uncached read')) {
      if ((r.queriesPerRequest ?? 0) < 0.9) {
        throw new Error(
          `uncached read -> ${r.target}: ${r.queriesPerRequest?.toFixed(3)} DB queries per request, so the cache ` +
            'answered it: the service did not accept the read-your-writes position the bench sent',
        );
      }
    }
    // One more run of each process-level case with the profiler on (not counted above: it slows the process).
    const profiles: { title: string; summary: ProfileSummary }[] = [];
    const profiledCases: [number, number, string][] = [
      [0, baseline.child.pid!, 'baseline server'],
      [2, twin.pods[0].pid, 'cached GET, one API process'],
      [1, twin.pods[0].pid, 'cached GET through nginx: one of the 2 API processes'],
      [4, quiet.pid, 'cached GET, one API process, LOG_LEVEL=warn (diagnostic)'],
    ];
    const profilesOf = new Map<number, number>();
    // nginx is profiled with perf where it is installed (not a V8 process), in the run through nginx.
    const perf = perfAvailable();
    for (const [i, pid, title] of profiledCases) {
      const n = profilesOf.get(pid) ?? 0;
      profilesOf.set(pid, n + 1);
      startProfile(pid);
      const edgePerf =
        perf && cases[i].target === edge
          ? startPerf(componentPids({ dir: twin.edge.dir }), join(profileDir, 'edge.perf.data'))
          : undefined;
      await measure(cases[i].target, { seconds }, cases[i].req);
      profiles.push({ title, summary: await stopProfile(pid, profileDir, n, 12) });
      if (edgePerf) {
        // perf may be installed but not permitted (perf_event_paranoid): the bench goes on without it.
        await edgePerf.stop().then(
          (summary) => profiles.push({ title: 'edge (nginx), cached GET: perf', summary }),
          (err: Error) => log(`[bench] no perf profile of nginx: ${err.message}`),
        );
      }
      log(`[bench] profiled: ${title}`);
    }
    if (!perf) log('[bench] perf is not installed: no profile of nginx');

    const md = renderResults({
      results,
      cores: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      node: process.version,
      seconds,
      rounds,
      connections: CONNECTIONS,
      keys: KEYS,
      warmUpRequests: WARM_UP_REQUESTS,
      sourceAddresses: SOURCE_ADDRESSES,
      rateLimit: twin.config.edge.rateLimit,
      logLevel: twin.pods[0].env[SERVICE_ENV.logLevel],
      prodApiCpuLimit: loadEnvironment('prod').api.resources.limits.cpu,
      date: new Date().toISOString(),
      profiles,
    });
    const prettier = await import('prettier');
    // Written as `npm run format` would leave them, so `npm run lint` stays clean.
    const format = async (text: string, file: string) =>
      prettier.format(text, { ...(await prettier.resolveConfig(file)), filepath: file });
    fs.mkdirSync(join(ROOT, 'bench'), { recursive: true });
    // Sections written by hand (not from this bench) survive a new benchmark: the data-tier failover
    // drills and the drills on the faithful twin (test/drills.test.ts runs), and the optimisations tried.
    const previous = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
    const kept = ['optimisations', 'failover', 'drills']
      .map((m) => new RegExp(`<!-- ${m}:start -->[\\s\\S]*<!-- ${m}:end -->\\n?`).exec(previous)?.[0])
      .filter((x): x is string => !!x);
    const formatted = await format([md.trimEnd(), ...kept].join('\n\n'), out);
    fs.writeFileSync(out, formatted);
    // README.md and docs/local.md quote the latest tables between markers; keep them in step.
    const docs = [join(ROOT, 'README.md'), join(ROOT, 'docs', 'local.md')];
    for (const doc of docs) {
      const text = fillSections(fs.readFileSync(doc, 'utf8'), { [RESULTS_SECTION]: resultTables(formatted) });
      // README.md is not prettier-formatted: its generated sections are compared byte for byte by a test.
      fs.writeFileSync(doc, doc.endsWith('README.md') ? text : await format(text, doc));
    }
    console.log(`\n${md}\nwritten to ${out}, README.md and docs/local.md`);
    return 0;
  } finally {
    await twin?.stop();
    baseline.stop();
    fs.rmSync(profileDir, { recursive: true, force: true });
  }
}
