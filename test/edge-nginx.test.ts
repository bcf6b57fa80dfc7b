/**
 * The edge's production settings on real nginx, each from a conf the platform
 * renders for an environment with that setting (synthesized, read back from the
 * edge ConfigMap): the client's real IP behind a trusted proxy, the rate-limit
 * allowlist, per-route limits, HTTP/2 and gzip (with ETag revalidation through
 * the API's own HTTP caching code).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import * as fs from 'fs';
import * as http from 'http';
import * as http2 from 'http2';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { installHttpCaching } from '../service/src/http/http-cache';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { type Endpoint, type RunningNginx, startNginx } from '../tools/runtime/nginx-runner';
import { type Backend, backend, BIG_JSON, rawRequest, request, selfSigned } from './helpers/edge-http';
import { find } from './helpers/objects';

jest.setTimeout(30000);

/** The shipped nginx.conf of `env` with `edge` overrides (as an environment file would set them). */
function confOf(env: string, edge: object): string {
  return find(synthObjects(loadEnvironment(env, { edge })) as never[], 'ConfigMap', 'edge-nginx-conf').data[
    'nginx.conf'
  ];
}

/** `n` requests one after another; their statuses. */
async function statuses(n: number, send: () => Promise<{ status: number }>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send()).status);
  return out;
}

/** Access-log lines (JSON). */
type LogLine = { remote_addr: string; peer_addr?: string; status: number };

/**
 * The access-log lines of requests to `uri`, once at least `count` are there.
 * nginx writes a line in its log phase, after the response is sent: a client can
 * read the log before the line of the request it just finished is written.
 */
async function accessLog(nginx: RunningNginx, uri: string, count = 1): Promise<LogLine[]> {
  const read = (): LogLine[] =>
    fs
      .readFileSync(nginx.logPath, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes(`"uri":"${uri}"`))
      .map((l) => JSON.parse(l));
  const deadline = Date.now() + 5000;
  let lines = read();
  while (lines.length < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    lines = read();
  }
  return lines;
}

/** A rate limit small enough to see: 1 request/s, 2 more in a burst: 3 pass at once, then 429. */
const TINY = { requestsPerSecond: 1, burst: 2 };
const TINY_PATTERN = [200, 200, 200, 429, 429];
/** The load balancer of these tests. */
const LB = '127.0.0.1';

let be: Backend;
const running: RunningNginx[] = [];
const start = async (nginxConf: string, tls?: { cert: string; key: string }) => {
  const n = await startNginx({ nginxConf, upstreams: [be], tls });
  running.push(n);
  return n;
};

beforeAll(async () => {
  be = await backend('a');
});
afterAll(async () => {
  http.globalAgent.destroy();
  https.globalAgent.destroy();
  await Promise.all(running.map((n) => n.stop()));
  await be?.close();
});

describe('the real client IP behind a trusted load balancer (edge.realIp, X-Forwarded-For)', () => {
  let nginx: RunningNginx;
  beforeAll(async () => {
    nginx = await start(
      confOf('dev', { realIp: { trustedProxies: [`${LB}/32`], header: 'X-Forwarded-For' }, rateLimit: TINY }),
    );
  });
  const viaLb =
    (xff: string, uri = '/api/v1/ping') =>
    () =>
      request(nginx.http, uri, { agent: false, localAddress: LB, headers: { 'x-forwarded-for': xff } });

  test('two clients behind the load balancer get separate buckets', async () => {
    // GIVEN client 1 used up its bucket
    expect(await statuses(5, viaLb('203.0.113.1'))).toEqual(TINY_PATTERN);
    // WHEN client 2 comes through the same load balancer THEN it has its own bucket
    expect(await statuses(5, viaLb('203.0.113.2'))).toEqual(TINY_PATTERN);
    // AND the backend and the access log see the client, the log also the load balancer
    await request(nginx.http, '/api/v1/who', {
      agent: false,
      localAddress: LB,
      headers: { 'x-forwarded-for': '203.0.113.3' },
    });
    expect(be.lastHeaders['x-real-ip']).toBe('203.0.113.3');
    expect(await accessLog(nginx, '/api/v1/who')).toEqual([
      expect.objectContaining({ remote_addr: '203.0.113.3', peer_addr: LB, status: 200 }),
    ]);
  });

  test('a client cannot take another bucket by writing the header itself: the last untrusted address counts', async () => {
    // GIVEN client 4's bucket is empty
    expect(await statuses(5, viaLb('203.0.113.4'))).toEqual(TINY_PATTERN);
    // WHEN client 5 sends "X-Forwarded-For: 203.0.113.4" and the load balancer appends its real address
    const r = await viaLb('203.0.113.4, 203.0.113.5', '/api/v1/spoof-behind-lb')();
    // THEN nginx takes client 5's address: its own, full bucket
    expect(r.status).toBe(200);
    expect((await accessLog(nginx, '/api/v1/spoof-behind-lb'))[0].remote_addr).toBe('203.0.113.5');
  });

  test('behind a chain of trusted proxies (a CDN in front of the load balancer), the client is the last address not in it', async () => {
    const chain = await start(
      confOf('dev', {
        realIp: { trustedProxies: [`${LB}/32`, '192.0.2.0/24'], header: 'X-Forwarded-For' },
        rateLimit: TINY,
      }),
    );
    await request(chain.http, '/api/v1/chain', {
      agent: false,
      localAddress: LB,
      headers: { 'x-forwarded-for': '203.0.113.6, 192.0.2.10' },
    });
    expect((await accessLog(chain, '/api/v1/chain'))[0]).toEqual(
      expect.objectContaining({ remote_addr: '203.0.113.6' }),
    );
  });

  test('fails when an untrusted address sends X-Forwarded-For: the header is ignored', async () => {
    // GIVEN a client connecting directly from an address that is not a trusted proxy
    let n = 0;
    const direct = () =>
      request(nginx.http, '/api/v1/spoof', {
        agent: false,
        localAddress: '127.0.0.2',
        headers: { 'x-forwarded-for': `198.51.100.${++n}` },
      });
    // WHEN it names a new address in every request THEN all of them share its own bucket
    expect(await statuses(5, direct)).toEqual(TINY_PATTERN);
    expect(new Set((await accessLog(nginx, '/api/v1/spoof', 5)).map((l) => l.remote_addr))).toEqual(
      new Set(['127.0.0.2']),
    );
  });
});

test('without edge.realIp (the default), X-Forwarded-For is ignored whoever sends it', async () => {
  const nginx = await start(confOf('dev', { rateLimit: TINY }));
  let n = 0;
  const send = () =>
    request(nginx.http, '/api/v1/ping', {
      agent: false,
      localAddress: LB,
      headers: { 'x-forwarded-for': `203.0.113.${++n}` },
    });
  expect(await statuses(5, send)).toEqual(TINY_PATTERN);
  expect(confOf('dev', {})).not.toMatch(/set_real_ip_from|real_ip_header/);
});

describe('the real client IP from the PROXY protocol (edge.realIp.header: proxy_protocol)', () => {
  let nginx: RunningNginx;
  beforeAll(async () => {
    nginx = await start(
      confOf('dev', { realIp: { trustedProxies: [`${LB}/32`], header: 'proxy_protocol' }, rateLimit: TINY }),
    );
  });
  const proxied = (client: string, uri: string, from = LB) =>
    rawRequest(
      nginx.http,
      `PROXY TCP4 ${client} 127.0.0.1 40000 8080\r\nGET ${uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      from,
    );

  test('the address in the PROXY header from the trusted load balancer is the client', async () => {
    expect(await statuses(5, () => proxied('203.0.113.20', '/api/v1/pp'))).toEqual(TINY_PATTERN);
    expect((await proxied('203.0.113.21', '/api/v1/pp2')).status).toBe(200);
    expect((await accessLog(nginx, '/api/v1/pp2'))[0]).toEqual(
      expect.objectContaining({ remote_addr: '203.0.113.21' }),
    );
  });

  test('fails when an untrusted address sends a PROXY header: its own address counts', async () => {
    expect((await proxied('203.0.113.22', '/api/v1/pp-untrusted', '127.0.0.2')).status).toBe(200);
    expect((await accessLog(nginx, '/api/v1/pp-untrusted'))[0].remote_addr).toBe('127.0.0.2');
  });
});

describe('the allowlist (edge.rateLimit.allowlist): no limit for health checks and internal callers', () => {
  let nginx: RunningNginx;
  beforeAll(async () => {
    // The load balancer's own health checks come from its address with no X-Forwarded-For.
    nginx = await start(
      confOf('dev', {
        realIp: { trustedProxies: [`${LB}/32`], header: 'X-Forwarded-For' },
        rateLimit: { ...TINY, allowlist: [`${LB}/32`, '10.0.0.0/8'] },
      }),
    );
  });

  test('an allowlisted address is never limited; clients behind it still are', async () => {
    const health = () => request(nginx.http, '/healthz', { agent: false, localAddress: LB });
    expect(await statuses(30, health)).toEqual(Array(30).fill(200));
    const client = () =>
      request(nginx.http, '/api/v1/ping', {
        agent: false,
        localAddress: LB,
        headers: { 'x-forwarded-for': '203.0.113.30' },
      });
    expect(await statuses(5, client)).toEqual(TINY_PATTERN);
    const other = () => request(nginx.http, '/api/v1/ping', { agent: false, localAddress: '127.0.0.3' });
    expect(await statuses(5, other)).toEqual(TINY_PATTERN);
  });
});

describe('per-route limits (edge.rateLimit.routes): writes stricter, cached reads looser', () => {
  let nginx: RunningNginx;
  // Default: 2 r/s + 2 (3 at once). Writes to users: 1 r/s + 1 (2 at once). Products: 50 r/s + 30.
  beforeAll(async () => {
    nginx = await start(
      confOf('dev', {
        rateLimit: {
          requestsPerSecond: 2,
          burst: 2,
          routes: [
            { pathPrefix: '/api/v1/users', methods: ['POST', 'PATCH'], requestsPerSecond: 1, burst: 1 },
            { pathPrefix: '/api/v1/products', requestsPerSecond: 50, burst: 30 },
          ],
        },
      }),
    );
  });
  const send = (method: string, uri: string, client: string) => () =>
    request(nginx.http, uri, { method, agent: false, localAddress: client });

  test('a write over its route limit gets 429 with Retry-After and the JSON error', async () => {
    expect(await statuses(4, send('POST', '/api/v1/users', '127.0.1.1'))).toEqual([200, 200, 429, 429]);
    const r = await send('PATCH', '/api/v1/users/7', '127.0.1.1')();
    expect([r.status, r.headers['retry-after'], r.headers['content-type']]).toEqual([429, '1', 'application/json']);
    expect(JSON.parse(r.body)).toEqual({
      error: 'Too Many Requests',
      message: 'rate limit exceeded; retry after the time in Retry-After',
      field: 'request',
    });
  });

  test("a write the route limits is not counted again by the default; the route's other methods keep the default", async () => {
    // GIVEN a client used its 2 writes
    expect(await statuses(2, send('POST', '/api/v1/users', '127.0.1.2'))).toEqual([200, 200]);
    // THEN its reads of the same path still have the whole default bucket (3 at once), no more
    expect(await statuses(4, send('GET', '/api/v1/users/1', '127.0.1.2'))).toEqual([200, 200, 200, 429]);
    // AND a method the route does not name shares that default bucket
    expect(await statuses(1, send('DELETE', '/api/v1/users/1', '127.0.1.2'))).toEqual([429]);
  });

  test('a route looser than the default lets more through than the default would', async () => {
    expect(await statuses(25, send('GET', '/api/v1/products/9', '127.0.1.3'))).toEqual(Array(25).fill(200));
    expect(await statuses(4, send('GET', '/api/v1/orders', '127.0.1.3'))).toEqual([200, 200, 200, 429]);
  });
});

describe('HTTP/2 and gzip on the TLS listener (prod conf)', () => {
  let nginx: RunningNginx;
  let tmp: string;
  let api: FastifyInstance;
  let apiNginx: RunningNginx;
  const gunzip = (body: Buffer) => zlib.gunzipSync(body).toString('utf8');

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-h2-'));
    const cert = selfSigned(tmp, 'fastnext.example.com');
    nginx = await start(confOf('prod', {}), cert);
    // The API's own HTTP caching (service/src/http/http-cache.ts) on a route of BIG_JSON.
    api = Fastify();
    installHttpCaching(api);
    api.get('/api/v1/items', { config: { cacheControl: 'no-cache' } }, async () => JSON.parse(BIG_JSON) as object);
    await api.listen({ port: 0, host: '127.0.0.1' });
    const port = (api.server.address() as { port: number }).port;
    apiNginx = await startNginx({ nginxConf: confOf('prod', {}), upstreams: [{ host: '127.0.0.1', port }], tls: cert });
    running.push(apiNginx);
  });
  afterAll(async () => {
    await api?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** One HTTP/2 request; the raw body and headers. */
  function h2(ep: Endpoint, urlPath: string, headers: http2.OutgoingHttpHeaders = {}) {
    return new Promise<{ alpn: string; headers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const session = http2.connect(`https://${ep.host}:${ep.port}`, { rejectUnauthorized: false });
      session.on('error', reject);
      const stream = session.request({ ':path': urlPath, ...headers });
      const chunks: Buffer[] = [];
      let response: http2.IncomingHttpHeaders = {};
      stream.on('response', (h) => (response = h));
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        const alpn = String(session.alpnProtocol);
        session.close();
        resolve({ alpn, headers: response, body: Buffer.concat(chunks) });
      });
      stream.on('error', reject);
      stream.end();
    });
  }

  test('HTTP/2 is negotiated (ALPN h2) and proxied, with the security headers; HTTP/1.1 clients still get 1.1', async () => {
    const r = await h2(nginx.https!, '/api/v1/ping');
    expect([r.alpn, r.headers[':status'], JSON.parse(r.body.toString()).backend]).toEqual(['h2', 200, 'a']);
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    const h1 = await new Promise<string>((resolve, reject) =>
      https
        .get(
          {
            host: nginx.https!.host,
            port: nginx.https!.port,
            path: '/api/v1/ping',
            rejectUnauthorized: false,
            agent: false,
          },
          (res) => {
            res.resume();
            resolve(res.httpVersion);
          },
        )
        .on('error', reject),
    );
    expect(h1).toBe('1.1');
  });

  test('JSON above the threshold is gzipped for clients that accept it, over HTTP/1.1 and HTTP/2', async () => {
    const plain = await request(nginx.https!, '/big', { tls: true, agent: false });
    const gz = await request(nginx.https!, '/big', { tls: true, agent: false, headers: { 'accept-encoding': 'gzip' } });
    expect([plain.headers['content-encoding'], plain.bytes]).toEqual([undefined, Buffer.byteLength(BIG_JSON)]);
    expect([gz.headers['content-encoding'], gz.headers.vary]).toEqual(['gzip', 'Accept-Encoding']);
    const r2 = await h2(nginx.https!, '/big', { 'accept-encoding': 'gzip' });
    expect(r2.headers['content-encoding']).toBe('gzip');
    expect(gunzip(r2.body)).toBe(BIG_JSON);
    // BIG_JSON is repetitive, as API lists are: level 1 takes it to under a quarter.
    expect(r2.body.length).toBeLessThan(Buffer.byteLength(BIG_JSON) / 4);
  });

  test('a body below the threshold is sent as it is (no CPU spent on it)', async () => {
    const small = await request(nginx.https!, '/api/v1/ping', {
      tls: true,
      agent: false,
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(small.body)).toEqual({ backend: 'a' });
  });

  test("ETag and 304 keep working through compression: nginx weakens the API's ETag, the API matches it weakly", async () => {
    // GIVEN a compressed response: nginx turned the API's strong ETag into a weak one
    const first = await h2(apiNginx.https!, '/api/v1/items', { 'accept-encoding': 'gzip' });
    expect(first.headers['content-encoding']).toBe('gzip');
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^W\/"[^"]+"$/);
    // An uncompressed response carries the same tag, strong
    const identity = await h2(apiNginx.https!, '/api/v1/items');
    expect(identity.headers.etag).toBe(etag.slice(2));
    // WHEN the client revalidates with the weak tag THEN the API answers 304 through nginx
    for (const [ifNoneMatch, encoding] of [
      [etag, 'gzip'],
      [etag.slice(2), 'identity'],
    ]) {
      const again = await h2(apiNginx.https!, '/api/v1/items', {
        'accept-encoding': encoding,
        'if-none-match': ifNoneMatch,
      });
      expect([again.headers[':status'], again.body.length]).toEqual([304, 0]);
    }
  });
});
