/** The pure parts of `npm run bench` on the twin: the Zipf key sampler and results.md. */
import { renderResults, RESULTS_SECTION, resultTables, type CaseResult } from '../tools/bench/report';
import { fillSections } from '../tools/readme';
import { seededRandom, zipfSampler } from '../tools/bench/zipf';

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
  const md = renderResults({
    results: [
      result('baseline', 'minimal Fastify route', 10000),
      result('cached GET', 'nginx (2 pods)', 4000, { hitRatio: 0.95, queriesPerRequest: 0.05 }),
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
  });

  test('states the core count, each target as met or not met, and marks the projection', () => {
    expect(md).toContain('Machine: **2 cores**');
    expect(md).toContain('| cached GET through nginx >= 50 % of the baseline req/s | 40.0 % | **not met** |');
    expect(md).toContain(
      '| DB queries per request reduced >= 85 % with the cache on (one process, on vs off) | 0.030 vs 0.900 = 96.7 % fewer | met |',
    );
    expect(md).toContain('## Projection (not a measurement)');
    expect(md).toContain('| 20 | 100000 | 3000 |');
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
