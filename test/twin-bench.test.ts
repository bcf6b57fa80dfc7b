/** The pure parts of `npm run bench` on the twin: the Zipf key sampler and results.md. */
import { type BenchRun, renderResults, RESULTS_SECTION, resultTables, type CaseResult } from '../tools/bench/report';
import { fillSections } from '../tools/manifests/readme';
import { seededRandom, zipfSampler } from '../tools/bench/zipf';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, cpuSnapshot } from '../tools/bench/cpu';
import { startPerf } from '../tools/bench/profile';

describe('zipfSampler', () => {
  test('draws rank k with probability proportional to 1/(k+1) (s = 1)', () => {
    const n = 100;
    const draw = zipfSampler(n, 1, seededRandom(1));
    const counts = new Array<number>(n).fill(0);
    const samples = 200000;
    for (let i = 0; i < samples; i++) counts[draw()]++;
    const h = Array.from({ length: n }, (_, k) => 1 / (k + 1)).reduce((a, b) => a + b, 0);
    for (const k of [0, 1, 9, 99]) {
      const expected = samples / ((k + 1) * h);
      // 5 standard deviations of a binomial count.
      expect(Math.abs(counts[k] - expected)).toBeLessThan(5 * Math.sqrt(expected));
    }
    expect(counts.every((c, k) => k === 0 || c <= counts[0])).toBe(true);
  });

  test('the seeded generator repeats its sequence', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    expect(Array.from({ length: 5 }, a)).toEqual(Array.from({ length: 5 }, b));
  });

  test('fails when n is not a positive integer', () => {
    expect(() => zipfSampler(0)).toThrow("'n' (0) must be a positive integer");
  });
});

const result = (kind: string, target: string, rps: number, extra: Partial<CaseResult> = {}): CaseResult => ({
  kind,
  target,
  requestsPerSecond: rps,
  rounds: [rps],
  p50: 1,
  p95: 2,
  p99: 3,
  total: rps * 5,
  errors: 0,
  statuses: { 200: rps * 5 },
  ...extra,
});

describe('results.md', () => {
  const run: BenchRun = {
    results: [
      result('baseline', 'minimal Fastify route', 10000, {
        cpuPerRequest: { client: 60, baseline: 40 },
        machineBusy: 0.98,
      }),
      result('cached GET', 'nginx (2 pods)', 4000, {
        errors: 7,
        statuses: { 200: 19993, 429: 7 },
        hitRatio: 0.95,
        queriesPerRequest: 0.05,
        cpuPerRequest: { client: 80, edge: 90, api: 200, redis: 40, postgres: 0, other: 10 },
        machineBusy: 0.99,
      }),
      result('cached GET', 'one API process', 5000, { hitRatio: 0.97, queriesPerRequest: 0.03 }),
      result('cached GET', 'one API process, cache off', 2000, { hitRatio: 0, queriesPerRequest: 0.9 }),
    ],
    cores: 2,
    cpuModel: 'test cpu',
    node: 'v20',
    seconds: 5,
    rounds: 3,
    connections: 100,
    keys: 10000,
    warmUpRequests: 30000,
    sourceAddresses: 100,
    rateLimit: { requestsPerSecond: 100, burst: 50 },
    logLevel: 'info',
    prodApiCpuLimit: '1',
    date: '2026-01-01T00:00:00.000Z',
  };
  const md = renderResults(run);

  test('states the core count, each target as met or not met, and marks the projection', () => {
    expect(md).toContain('Machine: **2 cores**');
    expect(md).toContain(
      "| cached GET through nginx >= 50 % of the baseline req/s | 40.0 % (the edge limit's cap for 100 clients: 100.0 %) | **not met** |",
    );
    expect(md).toContain(
      '| DB queries per request reduced >= 85 % with the cache on (one process, on vs off) | 0.030 vs 0.900 = 96.7 % fewer | met |',
    );
    expect(md).toContain(
      "| cached GET through nginx: p95 < 100 ms at 100 connections, zero errors | p95 2.0 ms, 7 errors (7 of them the edge limit's 429) | **not met** |",
    );
    expect(md).toContain('## Projection (not a measurement)');
    // 100 clients x 100 r/s: the most the shipped limit lets through, against a 10000 r/s baseline.
    expect(md).toContain('can get at most 10000 r/s through the edge, 100.0 % of the baseline in this run.');
    expect(md).toContain('| 20 | 100000 | 3000 |');
  });

  test('charges each case its CPU per request by component, with the ceiling it implies', () => {
    // 80 + 90 + 200 + 40 + 0 + 10 = 420 us in all; 2 cores -> 2e6 / 420 = 4762 req/s at most.
    expect(md).toContain('| cached GET | nginx (2 pods) | 80 | 90 | 200 | 40 | 0 | - | 10 | 420 | 4762 | 99.0 % |');
    expect(md).toContain('| baseline | minimal Fastify route | 60 | - | - | - | - | 40 | - | 100 | 20000 | 98.0 % |');
    expect(md).toContain('cost 420 µs of CPU in all against 100 µs\n  for a baseline request (4.2 x)');
    expect(md).toContain('The client and the edge alone cost\n  170 µs, 1.7 x the baseline');
  });

  test('x baseline is the median of per-round ratios, so one noisy baseline round does not set it', () => {
    const one = renderResults({
      ...run,
      results: [
        result('baseline', 'minimal Fastify route', 20000, { rounds: [10000, 20000, 40000] }),
        // Rounds: 5000/10000 = 0.50, 6000/20000 = 0.30, 20000/40000 = 0.50 -> median 0.50
        // (the medians' quotient would be 6000/20000 = 0.30).
        result('cached GET', 'nginx (2 pods)', 6000, { rounds: [5000, 6000, 20000] }),
      ],
    });
    expect(one).toContain('| cached GET | nginx (2 pods) | 6000 | 5000 / 6000 / 20000 | 0.50 |');
    expect(one).toContain('| cached GET through nginx >= 50 % of the baseline req/s | 50.0 %');
  });

  test('the docs get the results and targets tables between the markers', () => {
    const doc = `# Doc\n<!-- bench:results:start -->\nold\n<!-- bench:results:end -->\nafter\n`;
    const out = fillSections(doc, { [RESULTS_SECTION]: resultTables(md) });
    expect(out).toContain('#### Results');
    expect(out).toContain('#### Targets');
    expect(out).not.toContain('old');
    expect(out).not.toContain('Projection');
    expect(out.endsWith(`<!-- bench:results:end -->\nafter\n`)).toBe(true);
  });

  test('fails when the document has no markers', () => {
    expect(() => fillSections('# Doc\n', { [RESULTS_SECTION]: 'x' })).toThrow(
      'the document has no <!-- bench:results:start --> ... <!-- bench:results:end --> markers',
    );
  });
});

describe('CPU accounting', () => {
  test('charges a component its root process and the descendants it starts', async () => {
    // sh (root) starts node (descendant), which spins until it has used 400 ms of CPU (not of wall
    // clock: a loaded machine gives it less), then both wait to be killed.
    const spin = 'while (process.cpuUsage().user < 400000); setTimeout(() => undefined, 60000)';
    const child = spawn('sh', ['-c', `${process.execPath} -e "${spin}" & wait`], {
      stdio: 'ignore',
      detached: true,
    });
    try {
      const components = { spinner: { pids: () => [child.pid!] }, nobody: { pids: () => [] } };
      const before = cpuSnapshot(components);
      let used = cpuSeconds(before, cpuSnapshot(components));
      for (const deadline = Date.now() + 20000; used.spinner < 0.3 && Date.now() < deadline;) {
        await new Promise((r) => setTimeout(r, 200));
        used = cpuSeconds(before, cpuSnapshot(components));
      }
      expect(used.spinner).toBeGreaterThanOrEqual(0.3);
      expect(used.nobody).toBe(0);
      expect(used.client).toBeGreaterThanOrEqual(0);
      expect(used.other).toBeGreaterThanOrEqual(0);
    } finally {
      process.kill(-child.pid!, 'SIGKILL'); // the whole group: sh and node
    }
  });
});

describe('perf profile of nginx', () => {
  test('a recording that got no samples is an error the bench can report, installed or not', async () => {
    // No such process (pids stop below 2^22): perf refuses it, or is not installed at all; either
    // way stop() rejects, and the bench logs the reason and carries on without the nginx profile.
    const file = join(mkdtempSync(join(tmpdir(), 'perf-')), 'none.data');
    await expect(startPerf([4194304], file).stop()).rejects.toThrow(/perf record wrote no profile/);
  });
});
