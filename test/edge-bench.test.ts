/** The pure parts of `npm run bench:edge`: reading h2load's summary and writing bench/edge.md. */
import { type EdgeCase, edgeTable, type EdgeRun, parseH2load, renderEdgeResults } from '../tools/bench/edge-report';

// h2load 1.52's summary of an HTTP/1.1 run over TLS (its text, as printed).
const SAMPLE = `starting benchmark...
spawning thread #0: 2 total client(s). 100 total requests
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: http/1.1

finished in 53.33ms, 1875.08 req/s, 294.81KB/s
requests: 100 total, 100 started, 100 done, 97 succeeded, 3 failed, 0 errored, 0 timeout
status codes: 97 2xx, 0 3xx, 3 4xx, 0 5xx
traffic: 15.72KB (16100) total, 11.23KB (11500) headers (space savings 0.00%), 700B (700) data
`;

test('h2load: requests, outcome, duration, bytes and the negotiated protocol', () => {
  const s = parseH2load(SAMPLE);
  expect(s.seconds).toBeCloseTo(0.05333, 6);
  expect({ ...s, seconds: undefined }).toEqual({
    requests: 100,
    succeeded: 97,
    failed: 3,
    errored: 0,
    timeout: 0,
    status2xx: 97,
    seconds: undefined,
    requestsPerSecond: 1875.08,
    headerBytes: 11500,
    dataBytes: 700,
    protocol: 'http/1.1',
  });
  expect(parseH2load(SAMPLE.replace('finished in 53.33ms', 'finished in 2.5s')).seconds).toBe(2.5);
});

test('fails when h2load printed no summary (it could not connect)', () => {
  expect(() => parseH2load('starting benchmark...\nNo protocol negotiated. Aborted.\n')).toThrow(
    'h2load printed no requests line',
  );
});

const edgeCase = (protocol: EdgeCase['protocol'], acceptGzip: boolean, micros: number): EdgeCase => ({
  protocol,
  body: 'users',
  bodyBytes: 3906,
  acceptGzip,
  edgeMicrosPerRequest: micros,
  minMicrosPerRequest: micros - 5,
  rounds: [micros],
  requestsPerSecond: 9000,
  wireBodyBytes: acceptGzip ? 547 : 3906,
  wireHeaderBytes: 300,
  requests: 60000,
  failed: 0,
});

test("the table: HTTP/2's cost against HTTP/1.1, gzip's against identity, bytes on the wire", () => {
  const run: EdgeRun = {
    cases: [
      edgeCase('HTTP/1.1', false, 70),
      edgeCase('HTTP/1.1', true, 82.5),
      edgeCase('HTTP/2', false, 60),
      edgeCase('HTTP/2', true, 75),
    ],
    nginxVersion: '1.22.1',
    h2loadVersion: '1.52.0',
    cores: 2,
    cpuModel: 'test cpu',
    requestsPerCase: 20000,
    rounds: 3,
    h1Connections: 50,
    h2Connections: 5,
    h2Streams: 10,
    gzip: { minLengthBytes: 1024, level: 1 },
    date: '2026-01-01T00:00:00.000Z',
  };
  const rows = edgeTable(run).split('\n').slice(2);
  expect(rows).toEqual([
    '| HTTP/1.1 | users (3906 B) | identity | 70.0 (65.0) |  |  | 3906 B + 300 B | 9000 | 0/60000 |',
    '| HTTP/1.1 | users (3906 B) | gzip | 82.5 (77.5) |  | +12.5 | 547 B + 300 B | 9000 | 0/60000 |',
    '| HTTP/2 | users (3906 B) | identity | 60.0 (55.0) | -10.0 |  | 3906 B + 300 B | 9000 | 0/60000 |',
    '| HTTP/2 | users (3906 B) | gzip | 75.0 (70.0) | -7.5 | +15.0 | 547 B + 300 B | 9000 | 0/60000 |',
  ]);
  expect(renderEdgeResults(run)).toContain('`edge.rateLimit.allowlist: [127.0.0.0/8]`');
});
