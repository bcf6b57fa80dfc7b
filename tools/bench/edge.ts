/**
 * `npm run bench:edge`: the edge's CPU per request over HTTP/1.1 and HTTP/2, with
 * and without gzip, on real nginx running the shipped prod nginx.conf (not part
 * of the test suite). h2load (Debian's nghttp2-client) is the client for both
 * protocols, so the only difference between two cases is the one under test.
 * Writes bench/edge.md and the README's `bench:edge` section.
 *
 *   npm run bench:edge -- [--requests 20000] [--rounds 3]
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EDGE_PROXY_DEFAULTS } from '../../constructs/edge/edge-settings';
import { loadEnvironment } from '../../stacks/environments';
import { synthObjects } from '../../stacks/synth';
import { fillSections } from '../manifests/readme';
import { makeTempDir, removeDir } from '../runtime/launcher/processes';
import { nginxVersion, shippedNginxConf, startNginx } from '../runtime/nginx-runner';
import { cpuSeconds, cpuSnapshot } from './cpu';
import { EDGE_SECTION, type EdgeCase, edgeTable, parseH2load, renderEdgeResults } from './edge-report';
import { BODIES } from './json-server';
import { startBenchServer } from './http';
import { intOption } from './report';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
// The same 50 requests in flight either way. nginx closes a connection after 1000 requests
// (keepalive_requests, its default, which HTTP/2 shares) and h2load does not reconnect, so each
// connection must stay under that: 20000 requests over 25 connections is 800 each.
const H1_CONNECTIONS = 50;
const H2_CONNECTIONS = 25;
const H2_STREAMS = 2;
const MAX_PER_CONNECTION = 1000;

interface CaseSpec {
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  readonly body: 'user' | 'users';
  readonly acceptGzip: boolean;
}

const CASES: readonly CaseSpec[] = [
  { protocol: 'HTTP/1.1', body: 'users', acceptGzip: false },
  { protocol: 'HTTP/1.1', body: 'users', acceptGzip: true },
  { protocol: 'HTTP/2', body: 'users', acceptGzip: false },
  { protocol: 'HTTP/2', body: 'users', acceptGzip: true },
  { protocol: 'HTTP/1.1', body: 'user', acceptGzip: false },
  { protocol: 'HTTP/1.1', body: 'user', acceptGzip: true },
  { protocol: 'HTTP/2', body: 'user', acceptGzip: false },
  { protocol: 'HTTP/2', body: 'user', acceptGzip: true },
];

function selfSigned(dir: string): { cert: string; key: string } {
  const key = join(dir, 'tls.key');
  const crt = join(dir, 'tls.crt');
  // cert-manager's default is RSA 2048; the handshake is paid once per connection either way.
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=bench', '-keyout', key, '-out', crt],
    { stdio: 'ignore' },
  );
  return { cert: fs.readFileSync(crt, 'utf8'), key: fs.readFileSync(key, 'utf8') };
}

export async function main(argv: readonly string[] = []): Promise<number> {
  const option = (name: string, fallback: number) => intOption(argv, name, fallback);
  const requests = option('--requests', 20000);
  const rounds = option('--rounds', 5);
  if (requests / H2_CONNECTIONS >= MAX_PER_CONNECTION) {
    throw new Error(
      `--requests (${requests}) must be < ${H2_CONNECTIONS * MAX_PER_CONNECTION} (nginx's keepalive_requests)`,
    );
  }
  const tmp = makeTempDir('fastnext-bench-edge-');
  const upstream = await startBenchServer('json-server.ts');
  const objects = synthObjects(loadEnvironment('prod', { edge: { rateLimit: { allowlist: ['127.0.0.0/8'] } } }));
  const nginx = await startNginx({
    nginxConf: shippedNginxConf(objects),
    upstreams: [{ host: '127.0.0.1', port: Number(new URL(upstream.url).port) }],
    tls: selfSigned(tmp),
  });
  try {
    const url = (body: string) => `https://${nginx.https!.host}:${nginx.https!.port}/${body}`;
    const h2load = async (c: CaseSpec, n: number) => {
      const args = [
        '-n',
        String(n),
        ...(c.protocol === 'HTTP/1.1'
          ? ['--h1', '-c', String(H1_CONNECTIONS)]
          : ['-c', String(H2_CONNECTIONS), '-m', String(H2_STREAMS)]),
        ...(c.acceptGzip ? ['-H', 'accept-encoding: gzip'] : []),
        url(c.body),
      ];
      const { stdout } = await run('h2load', args, { maxBuffer: 16 * 1024 * 1024 });
      const s = parseH2load(stdout);
      const want = c.protocol === 'HTTP/2' ? 'h2' : 'http/1.1';
      if (s.protocol !== want) throw new Error(`h2load negotiated ${s.protocol}, not ${want}`);
      if (s.status2xx !== n) throw new Error(`${n - s.status2xx} of ${n} requests did not get a 2xx:\n${stdout}`);
      return s;
    };
    // Warm-up: TLS session setup, nginx's buffers and the upstream keep-alive pool.
    for (const c of CASES) await h2load(c, 2000);
    const samples = CASES.map(() => [] as { micros: number; s: ReturnType<typeof parseH2load> }[]);
    for (let round = 1; round <= rounds; round++) {
      for (const [i, c] of CASES.entries()) {
        const before = cpuSnapshot({ edge: { dir: nginx.dir } });
        const s = await h2load(c, requests);
        const cpu = cpuSeconds(before, cpuSnapshot({ edge: { dir: nginx.dir } }));
        const micros = (cpu.edge * 1e6) / s.succeeded;
        samples[i].push({ micros, s });
        console.log(
          `[bench:edge] round ${round}/${rounds} ${c.protocol} ${c.body} ${c.acceptGzip ? 'gzip' : 'identity'}: ` +
            `${micros.toFixed(1)} µs edge CPU/request, ${s.requestsPerSecond.toFixed(0)} req/s, ` +
            `${s.failed + s.errored + s.timeout} failed`,
        );
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const cases: EdgeCase[] = CASES.map((c, i) => {
      const xs = samples[i];
      const total = xs.reduce((a, x) => a + x.s.requests, 0);
      return {
        ...c,
        bodyBytes: Buffer.byteLength(BODIES[`/${c.body}`]),
        edgeMicrosPerRequest: median(xs.map((x) => x.micros)),
        minMicrosPerRequest: Math.min(...xs.map((x) => x.micros)),
        rounds: xs.map((x) => x.micros),
        requestsPerSecond: median(xs.map((x) => x.s.requestsPerSecond)),
        wireBodyBytes: xs.reduce((a, x) => a + x.s.dataBytes, 0) / total,
        wireHeaderBytes: xs.reduce((a, x) => a + x.s.headerBytes, 0) / total,
        requests: total,
        failed: total - xs.reduce((a, x) => a + x.s.status2xx, 0),
      };
    });
    const edgeRun = {
      cases,
      nginxVersion: nginxVersion().join('.'),
      h2loadVersion: /nghttp2\/(\S+)/.exec(execFileSync('h2load', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?',
      cores: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      requestsPerCase: requests,
      rounds,
      h1Connections: H1_CONNECTIONS,
      h2Connections: H2_CONNECTIONS,
      h2Streams: H2_STREAMS,
      gzip: EDGE_PROXY_DEFAULTS.gzip,
      date: new Date().toISOString(),
    };
    const prettier = await import('prettier');
    const out = join(ROOT, 'bench', 'edge.md');
    const md = await prettier.format(renderEdgeResults(edgeRun), {
      ...(await prettier.resolveConfig(out)),
      filepath: out,
    });
    fs.writeFileSync(out, md);
    const readme = join(ROOT, 'README.md');
    fs.writeFileSync(readme, fillSections(fs.readFileSync(readme, 'utf8'), { [EDGE_SECTION]: edgeTable(edgeRun) }));
    console.log(`\n${md}\nwritten to ${out} and README.md`);
    return 0;
  } finally {
    await nginx.stop();
    upstream.stop();
    removeDir(tmp);
  }
}
