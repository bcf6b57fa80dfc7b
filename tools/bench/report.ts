/** Renders bench/results.md from one `npm run bench` run. */

import { median } from '../k8s/values';
import { type ProfileSummary, renderProfile } from './profile';

export interface CaseResult {
  readonly kind: string;
  readonly target: string;
  /** Median over the rounds. */
  readonly requestsPerSecond: number;
  /** req/s of each round. */
  readonly rounds: readonly number[];
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly total: number;
  readonly errors: number;
  readonly statuses: Record<string, number>;
  readonly hitRatio?: number;
  /** Share of the lookups the in-process tier answered (part of hitRatio). */
  readonly localShare?: number;
  readonly queriesPerRequest?: number;
  /** Microseconds of CPU per request, by component (client, edge, api, redis, postgres, baseline, other). */
  readonly cpuPerRequest?: Readonly<Record<string, number>>;
  /** Share of the machine's CPU (all cores) busy during the case. */
  readonly machineBusy?: number;
}

/** Columns of the CPU table, in the order a request flows. */
const CPU_COMPONENTS = ['client', 'edge', 'api', 'redis', 'postgres', 'baseline', 'other'] as const;

const cpuTotal = (r: CaseResult | undefined) =>
  r?.cpuPerRequest ? Object.values(r.cpuPerRequest).reduce((a, b) => a + b, 0) : NaN;

export interface BenchRun {
  readonly results: readonly CaseResult[];
  readonly cores: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly seconds: number;
  readonly rounds: number;
  readonly connections: number;
  readonly keys: number;
  readonly warmUpRequests: number;
  readonly sourceAddresses: number;
  readonly rateLimit: { readonly requestsPerSecond: number; readonly burst: number };
  readonly logLevel: string | undefined;
  /** CPU limit of a prod API pod, for the projection's caveat. */
  readonly prodApiCpuLimit: string;
  /** Flame-graph summaries (tools/bench/profile.ts) of one extra, uncounted run of some cases. @default none */
  readonly profiles?: readonly { readonly title: string; readonly summary: ProfileSummary }[];
  readonly date: string;
}

const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const pct = (n: number | undefined) => (n === undefined ? '-' : `${(n * 100).toFixed(1)} %`);

function find(run: BenchRun, kind: string, target: RegExp): CaseResult | undefined {
  return run.results.find((r) => r.kind === kind && target.test(r.target));
}

export function renderResults(run: BenchRun): string {
  const base = find(run, 'baseline', /./);
  const baseRps = base?.requestsPerSecond ?? NaN;
  /**
   * The case's req/s over the baseline's in the same round, median over the rounds (rounds interleave the
   * cases, so a noisy neighbour weighs on both sides of each ratio).
   */
  const ratio = (r: CaseResult | undefined): number => {
    if (!r || !base) return NaN;
    if (r.rounds.length !== base.rounds.length) return r.requestsPerSecond / baseRps;
    return median(r.rounds.map((x, i) => x / base.rounds[i]));
  };
  const rows = run.results.map(
    (r) =>
      `| ${r.kind} | ${r.target} | ${f0(r.requestsPerSecond)} | ${r.rounds.map(f0).join(' / ')} | ${ratio(r).toFixed(2)} | ` +
      `${f1(r.p50)} | ${f1(r.p95)} | ${f1(r.p99)} | ${r.errors} | ${pct(r.hitRatio)} | ${pct(r.localShare)} | ` +
      `${r.queriesPerRequest === undefined ? '-' : r.queriesPerRequest.toFixed(3)} |`,
  );
  const edgeCached = find(run, 'cached GET', /^nginx/);
  const on = find(run, 'cached GET', /^one API process$/);
  const off = find(run, 'cached GET', /cache off/);
  const reduction =
    on?.queriesPerRequest !== undefined && off?.queriesPerRequest
      ? 1 - on.queriesPerRequest / off.queriesPerRequest
      : NaN;
  const cpuRows = run.results.map(
    (r) =>
      `| ${r.kind} | ${r.target} | ${CPU_COMPONENTS.map((c) => f0(r.cpuPerRequest?.[c] ?? NaN)).join(' | ')} | ` +
      `${f0(cpuTotal(r))} | ${f0((run.cores * 1e6) / cpuTotal(r))} | ${pct(r.machineBusy)} |`,
  );
  const edgeCeiling = run.sourceAddresses * run.rateLimit.requestsPerSecond;
  const limited = edgeCached?.statuses['429'] ?? 0;
  const edgeOnly = (edgeCached?.cpuPerRequest?.client ?? NaN) + (edgeCached?.cpuPerRequest?.edge ?? NaN);
  const check = (ok: boolean) => (ok ? 'met' : '**not met**');
  const baseCpu = base?.cpuPerRequest?.baseline ?? NaN;
  const targets = [
    [
      'cached GET through nginx >= 50 % of the baseline req/s',
      `${f1(ratio(edgeCached) * 100)} % (the edge limit's cap for ${run.sourceAddresses} clients: ${f1((edgeCeiling / baseRps) * 100)} %)`,
      check(ratio(edgeCached) >= 0.5),
    ],
    [
      `cached GET through nginx: p95 < 100 ms at ${run.connections} connections, zero errors`,
      `p95 ${f1(edgeCached?.p95 ?? NaN)} ms, ${edgeCached?.errors ?? '-'} errors` +
        (limited > 0 ? ` (${limited} of them the edge limit's 429)` : ''),
      check((edgeCached?.p95 ?? Infinity) < 100 && edgeCached?.errors === 0),
    ],
    [
      `cache hit ratio >= 90 % (Zipf s=1 over ${run.keys} keys, through nginx)`,
      pct(edgeCached?.hitRatio),
      check((edgeCached?.hitRatio ?? 0) >= 0.9),
    ],
    ...[
      ['one process', on],
      ['behind nginx', edgeCached],
    ].map(([label, r]) => {
      const x = ((r as CaseResult | undefined)?.cpuPerRequest?.api ?? NaN) / baseCpu;
      return [
        `API CPU per cached GET <= 2.0 x the baseline server's per request (${label as string})`,
        `${f0((r as CaseResult | undefined)?.cpuPerRequest?.api ?? NaN)} vs ${f0(baseCpu)} µs = ${x.toFixed(2)} x`,
        check(x <= 2),
      ];
    }),
    [
      'edge CPU per proxied request <= 30 µs (cached GET through nginx)',
      `${f0(edgeCached?.cpuPerRequest?.edge ?? NaN)} µs`,
      check((edgeCached?.cpuPerRequest?.edge ?? Infinity) <= 30),
    ],
    [
      'DB queries per request reduced >= 85 % with the cache on (one process, on vs off)',
      `${on?.queriesPerRequest?.toFixed(3) ?? '-'} vs ${off?.queriesPerRequest?.toFixed(3) ?? '-'} = ${f1(reduction * 100)} % fewer`,
      check(reduction >= 0.85),
    ],
  ];

  const warn = find(run, 'cached GET', /LOG_LEVEL/);
  const perPod = on?.requestsPerSecond ?? NaN;
  const perPodUncached = find(run, 'uncached read', /^one API process$/)?.requestsPerSecond ?? NaN;
  const writes = find(run, 'write', /^one API process$/)?.requestsPerSecond ?? NaN;
  const projection = [3, 20].map(
    (n) =>
      `| ${n} | ${f0(n * perPod)} | ${f0(n * perPod * (on?.queriesPerRequest ?? NaN))} | ${f0(n * perPodUncached)} | ` +
      `${f0(writes)} (one primary; does not grow with pods) |`,
  );

  return `# HTTP benchmark results

Generated by \`npm run bench\` (tools/bench/http.ts) on ${run.date}. Do not edit by hand.

Machine: **${run.cores} cores** (${run.cpuModel}), Node ${run.node}. Everything runs on these cores at once:
autocannon, nginx, the API processes, PostgreSQL primary + 2 replicas and the six Redis nodes. This machine
is shared, so absolute numbers are noisy; the ratios against the baseline (measured in the same run) travel better.

Method: the local twin of \`dev\` (tools/runtime/twin), seeded with ${run.keys} users. autocannon, ${run.connections}
connections, ${run.rounds} rounds of ${run.seconds} s per case, the rounds interleaving the cases (req/s is the
median round; latencies, errors and counters cover all rounds), after an unmeasured warm-up of ${run.warmUpRequests} cached GETs (the same
Zipf draw) through nginx, so the cache holds the working set as it would in steady state (TTL 300 s).
Latencies are computed from every response. "errors" = connection errors + timeouts + non-2xx answers.
"x baseline" is the median over the rounds of the case's req/s divided by the baseline's in the same round.

- **baseline**: a minimal Fastify route returning a constant, one process, logger off (tools/bench/baseline-server.ts).
- **cached GET**: \`GET /api/v1/users/:id\`, ids drawn from Zipf(s = 1) over ${run.keys} keys (read-through cache: each
  pod's in-process tier, then the Redis Cluster). "answered in-process" is the share of lookups the in-process tier
  answered without a Redis round trip; it is part of the hit ratio.
- **uncached read**: the same route and rows, uniformly drawn, with the read-your-writes header
  \`x-fastnext-min-lsn\` carrying position 0/0, signed as the service signs a write's position (the bench has the
  twin's key), which bypasses the shared cache; a replica serves it. The bench refuses to write results in which
  these reads made fewer than 0.9 DB queries each (the cache answered them).
- **write**: \`POST /api/v1/users\` with a unique email (a transaction on the primary).
- **LOG_LEVEL=warn (diagnostic)**: one extra API process with only LOG_LEVEL changed, to show what per-request
  logging costs. It is not a shipped setting and not counted against any target.
- **cache off**: one extra API process started with \`CACHE_ENABLED=false\` (the only env change), same cached-GET load.
  It still coalesces concurrent loads of the same key (the service's single-flight), so it can make
  fewer than one query per request under 100 connections on a Zipf key set.
- Cache hit ratio and DB queries per request come from the service's own counters
  (\`fastnext_cache_hits_total\`, \`fastnext_cache_local_hits_total\`, \`fastnext_cache_misses_total\`,
  \`fastnext_db_queries_total\`) read before and after each case.
- The API processes run with the Deployment's env unchanged apart from addresses, including
  \`LOG_LEVEL=${run.logLevel ?? '?'}\` (one JSON log line per request, as in the cluster); the baseline logs nothing.

**Edge rate limit.** nginx limits each client IP to ${run.rateLimit.requestsPerSecond} r/s (burst ${run.rateLimit.burst}).
The shipped nginx.conf is not changed for the benchmark. Instead each autocannon connection binds its own source
address (${run.sourceAddresses} addresses, 127.0.200.1-${run.sourceAddresses}), as ${run.sourceAddresses} clients would. Each
connection sends its next request when the last is answered, so its requests are spread evenly and the limit only
bites once a connection gets more than ${run.rateLimit.requestsPerSecond} answers a second: these ${run.sourceAddresses} clients
can get at most ${f0(edgeCeiling)} r/s through the edge, ${f1((edgeCeiling / baseRps) * 100)} % of the baseline in this run.
Beyond that a client's requests get 429, which count as errors like any other non-2xx.

## Results

| case | target | req/s (median) | rounds | x baseline | p50 ms | p95 ms | p99 ms | errors | cache hit ratio | answered in-process | DB queries / request |
|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

## Targets (2-core machine)

| target | measured | |
|---|---|---|
${targets.map((t) => `| ${t.join(' | ')} |`).join('\n')}

## Where the CPU goes

CPU time per request, in microseconds, by component, from /proc (tools/bench/cpu.ts): **client** is autocannon (this
process), **edge** nginx and its workers, **api** every API process, **baseline** the baseline server, **other**
the rest of the machine (other tenants, kernel threads). "ceiling" is the req/s this machine's ${run.cores} cores
would give if every one of them did nothing but this case: ${run.cores} x 10^6 / total.

| case | target | ${CPU_COMPONENTS.join(' | ')} | total | ceiling req/s | machine busy |
|---|---|${CPU_COMPONENTS.map(() => '---|').join('')}---|---|---|
${cpuRows.join('\n')}

## Reading the results

- Through nginx (two API processes), the cached GET
  made ${f1(((edgeCached?.requestsPerSecond ?? NaN) / (on?.requestsPerSecond ?? NaN)) * 100)} % of the req/s of one API process
  reached directly: on ${run.cores} cores, autocannon, nginx, the API processes and Redis compete for the same CPU, so
  a second process adds no capacity here and the edge adds a hop. In a cluster each pod has its own CPU.
- CPU: a cached GET through nginx cost ${f0(cpuTotal(edgeCached))} µs of CPU in all against ${f0(cpuTotal(base))} µs
  for a baseline request (${f1(cpuTotal(edgeCached) / cpuTotal(base))} x): API processes ${f0(edgeCached?.cpuPerRequest?.api ?? NaN)},
  Redis ${f0(edgeCached?.cpuPerRequest?.redis ?? NaN)}, edge ${f0(edgeCached?.cpuPerRequest?.edge ?? NaN)}, client ${f0(edgeCached?.cpuPerRequest?.client ?? NaN)}.
  With the machine saturated, that ratio sets the req/s ratio: 50 % of the baseline needs a cached GET through
  nginx to cost at most twice the baseline's CPU, load generator included. The client and the edge alone cost
  ${f0(edgeOnly)} µs, ${f1(edgeOnly / cpuTotal(base))} x the baseline's whole request, before the API does anything.
- The baseline does nothing per request; an API request validates its input, reads the cache (in-process, or Redis: a network round trip),
  records a histogram sample and writes a JSON log line. The LOG_LEVEL=warn diagnostic made
  ${f1(((warn?.requestsPerSecond ?? NaN) / (on?.requestsPerSecond ?? NaN)) * 100)} % of the req/s of the shipped
  LOG_LEVEL=${run.logLevel ?? '?'} (rounds ${warn?.rounds.map(f0).join(' / ') ?? '-'} vs ${on?.rounds.map(f0).join(' / ') ?? '-'}).
- The spread between rounds of the same case is the noise of this shared machine; compare ratios within a round
  (the "rounds" column) rather than single figures.

## Projection (not a measurement)

**This section is a projection**, not a measurement: it multiplies the per-process figures above (one API
process, direct) by the pod count, and assumes each pod gets the CPU one process used here (up to one core, shared
with autocannon and the data tier; a prod API pod is limited to ${run.prodApiCpuLimit} CPU), that the edge, Redis
and PostgreSQL keep up, and linear scaling. Writes all go to the single primary, so they do not scale with API
pods; the write figure is what one primary did here under 100 connections.

| API pods | cached GET req/s | DB queries/s it implies | uncached read req/s | write req/s |
|---|---|---|---|---|
${projection.join('\n')}
${
  run.profiles?.length
    ? `
## Profiles: where each process spends its CPU

V8's sampling profiler in one extra run of each case below (${run.seconds} s, not counted above: profiling slows a
process), reduced to the frames with the most self time, and the packages (or service directories) with the most self
time and with the most total time (what their frames call included, so a \`writev\` under ioredis counts for
ioredis), as shares of the samples the process was busy (tools/bench/profile.ts). \`writev\` is the syscall that
sends a response; \`writeUtf8String\` sends a string, as ioredis does its commands. nginx,
where Linux perf is installed, is sampled by perf in the run through nginx: \`[k]\` marks kernel symbols, \`[.]\`
user-space ones.

${run.profiles.map((p) => renderProfile(p.title, p.summary)).join('\n\n')}
`
    : ''
}`;
}

/** Name of the generated section (`<!-- bench:results:start -->` ... `:end -->`) in README.md and docs/local.md. */
export const RESULTS_SECTION = 'bench:results';

/** The results and targets tables of results.md (what docs/local.md quotes between the markers). */
export function resultTables(resultsMd: string): string {
  const from = resultsMd.indexOf('## Results');
  const to = resultsMd.indexOf('## Projection');
  if (from < 0 || to < 0) throw new Error('results.md has no "## Results" ... "## Projection" section');
  return resultsMd.slice(from, to).replace(/^## /gm, '#### ').trim();
}

/** `--name N` from a benchmark's argv: a positive integer, else `fallback`. */
export function intOption(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  const v = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} (${argv[i + 1]}) must be a positive integer`);
  return v;
}
