/**
 * The shipped nginx.conf (from the edge ConfigMap of the synthesized objects)
 * on Debian's real nginx, in front of loopback backends.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import { SERVICE_LIMITS } from '../service/src/contract';
import { EDGE_PORTS } from '../constructs/edge/nginx-conf';
import { type RunningNginx, startNginx } from '../tools/runtime/nginx-runner';
import { type Backend, backend, rawRequest, request, selfSigned } from './helpers/edge-http';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { find, objectsOf } from './helpers/objects';
import { floorEdgeConf } from '../tools/bench/edge-floor';

const shippedConf = (env: string): string => find(objectsOf(env), 'ConfigMap', 'edge-nginx-conf').data['nginx.conf'];

/** Stays under the 100 r/s per-client limit, as a well-behaved client does (1 request / 12 ms). */
const pace = () => new Promise((r) => setTimeout(r, 12));
/** Waits until the limiter's burst bucket is empty again (50 excess drain at 100 r/s in 0.5 s). */
const drainBucket = () => new Promise((r) => setTimeout(r, 700));

describe('edge nginx.conf on real nginx (dev: plain HTTP)', () => {
  let a: Backend;
  let b: Backend;
  let nginx: RunningNginx;

  beforeAll(async () => {
    [a, b] = await Promise.all([backend('a'), backend('b')]);
    nginx = await startNginx({ nginxConf: shippedConf('dev'), upstreams: [a, b] });
  });
  afterAll(async () => {
    http.globalAgent.destroy();
    await nginx?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });
  beforeEach(() => {
    a.hits = 0;
    b.hits = 0;
  });

  test('nginx -t accepts the shipped conf; only addresses and paths were substituted', () => {
    const shipped = shippedConf('dev').split('\n');
    const running = nginx.conf.split('\n');
    const changed = shipped.filter((line) => !running.includes(line)).map((l) => l.trim());
    for (const line of changed) {
      expect(line).toMatch(
        /^(server \S+ resolve max_fails=3 fail_timeout=30s;|resolver \S+ valid=10s ipv6=off;|listen \d+( default_server)?;|pid \S+;|\w+_temp_path \S+;)$/,
      );
    }
    expect(running.map((l) => l.trim())).toContain(`server 127.0.0.1:${a.port} max_fails=3 fail_timeout=30s;`);
  });

  test('proxies to the backends and adds the security headers', async () => {
    const r = await request(nginx.http, '/api/v1/ping');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).backend).toMatch(/^[ab]$/);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['strict-transport-security']).toBeUndefined();
    expect(r.headers.server).toBe('nginx');
  });

  test('least_conn: while one backend holds a request, new requests go to the other', async () => {
    // GIVEN one request held open on whichever backend nginx picks
    const agent = new http.Agent({ keepAlive: false });
    const heldReply = request(nginx.http, '/hold', { agent });
    const deadline = Date.now() + 3000;
    while (a.hits + b.hits === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const busy = a.hits ? a : b;
    const idle = busy === a ? b : a;
    // WHEN 10 requests arrive one after another
    for (let i = 0; i < 10; i++) {
      await pace();
      expect((await request(nginx.http, '/quick', { agent })).status).toBe(200);
    }
    // THEN all go to the idle backend (round-robin would send about half to the busy one)
    expect([busy.hits, idle.hits]).toEqual([1, 10]);
    busy.release();
    expect((await heldReply).status).toBe(200);
  });

  test('with both idle, requests spread over both backends', async () => {
    for (let i = 0; i < 20; i++) {
      await pace();
      expect((await request(nginx.http, '/quick')).status).toBe(200);
    }
    expect(a.hits).toBeGreaterThanOrEqual(5);
    expect(b.hits).toBeGreaterThanOrEqual(5);
  });

  test('a burst beyond rate + burst gets 429 with a JSON body, and no 5xx', async () => {
    await drainBucket();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    const replies = await Promise.all(Array.from({ length: 300 }, () => request(nginx.http, '/quick', { agent })));
    agent.destroy();
    const byStatus = new Map<number, number>();
    for (const r of replies) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    expect([...byStatus.keys()].sort()).toEqual([200, 429]);
    // 1 + burst (50) pass at once; the rate refills ~1 every 10 ms while the burst is in flight.
    expect(byStatus.get(200)!).toBeGreaterThanOrEqual(51);
    expect(byStatus.get(429)!).toBeGreaterThanOrEqual(100);
    const limited = replies.find((r) => r.status === 429)!;
    expect(JSON.parse(limited.body)).toEqual({
      error: 'Too Many Requests',
      message: 'rate limit exceeded; retry after the time in Retry-After',
      field: 'request',
    });
    expect(limited.headers['retry-after']).toBe('1');
    expect(limited.headers['content-type']).toBe('application/json');
    expect(limited.headers['x-content-type-options']).toBe('nosniff');
    await drainBucket();
  });

  test('the status port answers /healthz and stub_status; the public port does not', async () => {
    expect((await request(nginx.status, '/healthz')).body).toBe('ok\n');
    expect((await request(nginx.status, '/stub_status')).body).toMatch(/^Active connections: \d+/);
    const pub = await request(nginx.http, '/stub_status');
    expect(pub.body).not.toMatch(/Active connections/);
  });

  test('a dead backend is routed around with no failed request', async () => {
    // GIVEN backend b stops
    await b.close();
    // WHEN 20 requests arrive
    const replies = [];
    for (let i = 0; i < 20; i++) {
      await pace();
      replies.push(await request(nginx.http, '/quick'));
    }
    // THEN every request succeeds, served by a
    expect(replies.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(replies.every((r) => JSON.parse(r.body).backend === 'a')).toBe(true);
  });

  test('with no backend left, clients get a JSON 503, not an nginx error page', async () => {
    await a.close();
    const r = await request(nginx.http, '/quick');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({
      error: 'Service Unavailable',
      message: 'no API pod available; retry shortly',
    });
  });
});

describe("the edge's own errors: the API's one JSON shape (dev conf on real nginx)", () => {
  let a: Backend;
  let nginx: RunningNginx;

  beforeAll(async () => {
    a = await backend('a');
    nginx = await startNginx({ nginxConf: shippedConf('dev'), upstreams: [a] });
  });
  afterAll(async () => {
    await nginx?.stop();
    await a?.close();
  });

  const body = (error: string, message: string, field: string) => ({ error, message, field });

  test.each([
    [
      'a request without Host',
      'GET / HTTP/1.1\r\nConnection: close\r\n\r\n',
      400,
      body('Bad Request', 'the request is not valid HTTP', 'request'),
    ],
    [
      'TRACE',
      'TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      405,
      body('Method Not Allowed', 'the edge does not accept this method', 'method'),
    ],
    [
      'a URL beyond the header buffers',
      `GET /${'a'.repeat(10_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      414,
      body('URI Too Long', 'the URL is too long', 'url'),
    ],
    [
      'a header beyond the header buffers',
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(10_000)}\r\nConnection: close\r\n\r\n`,
      400,
      body('Bad Request', 'the request headers are too large', 'headers'),
    ],
    [
      'a body one byte over the API limit',
      `POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${
        SERVICE_LIMITS.bodyBytes + 1
      }\r\nConnection: close\r\n\r\n`,
      413,
      body('Payload Too Large', `request body is larger than ${SERVICE_LIMITS.bodyBytes} bytes`, 'body'),
    ],
  ])('fails when the edge gets %s: JSON, no HTML', async (_what, bytes, status, expected) => {
    const r = await rawRequest(nginx.http, bytes);
    expect(r.status).toBe(status);
    expect(r.headers).toContain('content-type: application/json');
    expect(r.body).not.toMatch(/<html/i);
    expect(JSON.parse(r.body)).toEqual(expected);
  });

  test('a body exactly at the API limit passes the edge (one setting for both)', async () => {
    const payload = 'x'.repeat(SERVICE_LIMITS.bodyBytes);
    const r = await rawRequest(
      nginx.http,
      `POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n${payload}`,
    );
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ backend: 'a' });
  });

  test('fails when a client asks for an error page itself: a JSON 404', async () => {
    const r = await rawRequest(nginx.http, 'GET /.edge-errors/400 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toEqual(body('Not Found', 'no route matches this path', 'url'));
  });

  test("the shipped conf's body limit is the API's", () => {
    expect(shippedConf('dev')).toContain(`client_max_body_size ${SERVICE_LIMITS.bodyBytes};`);
  });
});

describe('edge nginx.conf on real nginx (prod: TLS)', () => {
  let a: Backend;
  let nginx: RunningNginx;
  let tmp: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-tls-'));
    a = await backend('a');
    nginx = await startNginx({
      nginxConf: shippedConf('prod'),
      upstreams: [a],
      tls: selfSigned(tmp, 'fastnext.example.com'),
    });
  });
  afterAll(async () => {
    http.globalAgent.destroy();
    https.globalAgent.destroy();
    await nginx?.stop();
    await a?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("nginx -t accepts the shipped conf; only addresses, paths and HTTP/2's spelling for nginx 1.22 differ", () => {
    const shipped = shippedConf('prod').split('\n');
    const running = nginx.conf.split('\n');
    const changed = shipped.filter((line) => !running.includes(line)).map((l) => l.trim());
    // Rendered for the image's nginx 1.28 (`http2 on;`); the runner spells it as 1.22 takes it.
    expect(changed).toContain('http2 on;');
    expect(changed).toContain(`listen ${EDGE_PORTS.https} ssl default_server;`);
    for (const line of changed) {
      expect(line).toMatch(
        /^(server \S+ resolve max_fails=3 fail_timeout=30s;|resolver \S+ valid=10s ipv6=off;|listen \d+( ssl)?( default_server)?;|http2 on;|pid \S+;|\w+_temp_path \S+;|ssl_certificate(_key)? \S+;)$/,
      );
    }
    expect(running.map((l) => l.trim())).toContain(
      `listen ${nginx.https!.host}:${nginx.https!.port} ssl http2 default_server;`,
    );
  });

  test('plain HTTP redirects to HTTPS', async () => {
    const r = await request(nginx.http, '/api/v1/users?x=1');
    expect(r.status).toBe(308);
    expect(r.headers.location).toMatch(/^https:\/\/127\.0\.0\.1(:\d+)?\/api\/v1\/users\?x=1$/);
  });

  test('HTTPS terminates TLS, proxies, and sends HSTS', async () => {
    const r = await request(nginx.https!, '/api/v1/ping', { tls: true });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).backend).toBe('a');
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });
});

test('a wildcard host name (edge.hostnames: *.example.com) is a server_name real nginx runs', async () => {
  // GIVEN dev with wildcard host names
  const conf = find(
    synthObjects(loadEnvironment('dev', { edge: { hostnames: ['*.example.com', 'example.com'] } })),
    'ConfigMap',
    'edge-nginx-conf',
  ).data['nginx.conf'];
  expect(conf).toContain('server_name *.example.com example.com;');
  // WHEN nginx runs it THEN it proxies
  const be = await backend('w');
  const nginx = await startNginx({ nginxConf: conf, upstreams: [be] });
  try {
    const r = await request(nginx.http, '/api/v1/ping');
    expect([r.status, JSON.parse(r.body).backend]).toEqual([200, 'w']);
  } finally {
    http.globalAgent.destroy();
    await nginx.stop();
    await be.close();
  }
});

test("bench:edge-floor's floor confs run on real nginx: the bare proxy only proxies, the other answers itself", async () => {
  const a = await backend('a');
  const shipped = shippedConf('dev');
  const bare = await startNginx({ nginxConf: floorEdgeConf(shipped), upstreams: [a] });
  const answers = await startNginx({ nginxConf: floorEdgeConf(shipped, '{"floor":true}'), upstreams: [a] });
  try {
    const proxied = await request(bare.http, '/api/v1/ping');
    expect(proxied.status).toBe(200);
    expect(JSON.parse(proxied.body)).toEqual({ backend: 'a' });
    // Nothing the shipped conf adds: no security headers to the client, no request id to the upstream.
    expect(proxied.headers['x-content-type-options']).toBeUndefined();
    expect(a.lastHeaders['x-request-id']).toBeUndefined();
    // The upstream connection is kept (HTTP/1.1 without Connection: close).
    expect(a.lastHeaders.connection).toBeUndefined();
    expect(bare.conf).toMatch(/^worker_processes 1;$/m);
    const hits = a.hits;
    const answered = await request(answers.http, '/user');
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body)).toEqual({ floor: true });
    expect(a.hits).toBe(hits);
  } finally {
    http.globalAgent.destroy();
    await bare.stop();
    await answers.stop();
    await a.close();
  }
});
