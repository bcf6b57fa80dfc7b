/**
 * Validation, auth and error paths through app.inject. The database and Redis
 * addresses point at closed loopback ports: these requests are answered before
 * any query, and the ones that do reach a client prove the degraded answers.
 */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app';
import { API_PREFIX, FAULT_ROUTES, REQUEST_ID_HEADER, SERVICE_METRICS, SERVICE_PATHS } from '../../src/contract';
import { PRIMARY_UNAVAILABLE_MESSAGE } from '../../src/http/errors';
import { etagOf } from '../../src/http/http-cache';
import { offlineConfig, TOKEN } from '../helpers/offline';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(offlineConfig('silent'));
  // Extra routes to exercise the error handler and ETag logic without a database.
  app.get('/test/boom', async () => {
    throw new Error('password=hunter2 at /secret/path');
  });
  app.get('/test/etag', { config: { cacheControl: 'private, no-cache' } }, async () => ({ hello: 'world' }));
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: `/api/v1${url}`, payload: payload as object, headers });

describe('validation', () => {
  test('fails when a required body field is missing', async () => {
    const res = await post('/users', { username: 'alice' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'Bad Request', message: 'body.email is required', field: 'body.email' });
  });

  test('fails when the email is malformed', async () => {
    const res = await post('/users', { email: 'not-an-email', username: 'alice' });
    expect(res.json()).toEqual({
      error: 'Bad Request',
      message: 'body.email must match format "email"',
      field: 'body.email',
    });
  });

  test('fails when the body has an unknown field', async () => {
    const res = await post('/users', { email: 'a@b.co', username: 'alice', admin: true });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'Bad Request',
      message: 'body.admin is not an accepted field',
      field: 'body.admin',
    });
  });

  test('fails when an id is not a positive integer', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/users/abc' });
    expect(res.statusCode).toBe(400);
    expect(res.json().field).toBe('params.id');
    expect(res.json().message).toBe('params.id must match pattern "^[1-9][0-9]{0,17}$"');
  });

  test('fails when a query limit is out of range', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/users/search?q=x&limit=1000' });
    expect(res.json()).toEqual({
      error: 'Bad Request',
      message: 'querystring.limit must be <= 100',
      field: 'querystring.limit',
    });
  });

  test('fails when an activity time range is reversed', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/activity?user_id=1&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'Bad Request',
      message: 'querystring.from (2026-02-01T00:00:00.000Z) must be before to (2026-01-01T00:00:00.000Z)',
      field: 'querystring.from',
    });
  });

  test('fails when the project settings are not an object', async () => {
    const res = await post('/projects', { owner_id: '1', name: 'p', settings: [1] });
    expect(res.json()).toEqual({
      error: 'Bad Request',
      message: 'body.settings must be object',
      field: 'body.settings',
    });
  });

  test('fails when the body is not JSON', async () => {
    const res = await post('/users', '{"email":', { 'content-type': 'application/json' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'Bad Request',
      message: "Body is not valid JSON but content-type is set to 'application/json'",
      field: 'body',
    });
  });
});

describe('errors', () => {
  test('fails when the content type is not JSON', async () => {
    const res = await post('/users', 'email=a@b.co', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      error: 'Unsupported Media Type',
      message: 'content-type "application/x-www-form-urlencoded" is not accepted; send application/json',
      field: 'headers.content-type',
    });
  });

  test('unknown routes get a JSON 404', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'Not Found', message: 'no route matches GET /api/v1/nope', field: 'url' });
  });

  test('fails when the body is larger than 64 KiB', async () => {
    const res = await post('/users', { email: 'a@b.co', username: 'alice', full_name: 'x'.repeat(70_000) });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({
      error: 'Payload Too Large',
      message: 'request body is larger than 65536 bytes',
      field: 'body',
    });
  });

  test('a 500 carries no stack and no internal message', async () => {
    const res = await app.inject({ method: 'GET', url: '/test/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toMatch(/hunter2|secret|at \//);
    expect(res.json()).toEqual({
      error: 'Internal Server Error',
      message: `internal error; see the service log for request ${res.json().message.split(' ').pop()}`,
    });
  });
});

/** Resolves once the background probes have seen the (closed) primary and replica. */
async function probed(): Promise<void> {
  for (let i = 0; i < 100 && (app.db.primaryState.checkedAt === 0 || app.db.replicaStates[0].healthy); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('database unreachable', () => {
  test('fails with a retryable 503 when neither replica nor primary answers', async () => {
    await probed();
    const res = await app.inject({ method: 'GET', url: '/api/v1/users/1' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'Service Unavailable', message: PRIMARY_UNAVAILABLE_MESSAGE });
  });

  test('a write fails at once with 503 while the primary probe finds the primary unreachable', async () => {
    await probed();
    const started = Date.now();
    const res = await post('/users', { email: 'a@b.co', username: 'alice' });
    expect(Date.now() - started).toBeLessThan(200);
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      error: 'Service Unavailable',
      message: 'the primary database is unreachable; writes are refused until it is back; retry shortly',
    });
  });
});

describe('management auth', () => {
  test.each(['/cache/stats', '/cache/keys', '/database/index-usage', '/scaling/replication/status'])(
    'fails when %s is called without the bearer token',
    async (url) => {
      const res = await app.inject({ method: 'GET', url: `/api/v1${url}` });
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="fastnext-management"');
      expect(res.json()).toEqual({
        error: 'Unauthorized',
        message: 'a valid management token is required: send Authorization: Bearer <token>',
        field: 'headers.authorization',
      });
    },
  );

  test('fails when the token is wrong', async () => {
    const res = await post('/cache/clear-tags', { tags: ['x'] }, { authorization: 'Bearer wrong' });
    expect(res.statusCode).toBe(401);
  });

  test('with the token, cache stats answer even though Redis is unreachable', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/cache/stats',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ enabled: true, available: false, nodes: [] });
  });
});

describe('health without dependencies', () => {
  test('liveness answers without checking dependencies', async () => {
    const res = await app.inject({ method: 'GET', url: SERVICE_PATHS.liveness });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  test('readiness fails when no data source can serve reads (primary, replicas and cache all unreachable)', async () => {
    await probed();
    const res = await app.inject({ method: 'GET', url: SERVICE_PATHS.readiness });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      status: 'not ready',
      reason: 'no data source for reads: the primary, every replica and the cache are unreachable',
      reads: false,
      writes: false,
      sources: { primary: false, replicas: 0, cache: false },
    });
  });

  test('deep health reports the primary down from its probe', async () => {
    await probed();
    const res = await app.inject({ method: 'GET', url: SERVICE_PATHS.deep });
    expect(res.statusCode).toBe(503);
    expect(res.json().components.primary).toMatchObject({
      status: 'down',
      error: expect.stringMatching(/ECONNREFUSED|connect/),
    });
  });

  test('readiness fails while draining', async () => {
    app.draining = true;
    try {
      const res = await app.inject({ method: 'GET', url: SERVICE_PATHS.readiness });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'draining' });
    } finally {
      app.draining = false;
    }
  });
});

describe('HTTP caching', () => {
  test('a GET carries an ETag and Cache-Control; a matching If-None-Match gets 304', async () => {
    const res = await app.inject({ method: 'GET', url: '/test/etag' });
    expect(res.headers.etag).toBe(etagOf('{"hello":"world"}'));
    expect(res.headers['cache-control']).toBe('private, no-cache');
    const again = await app.inject({
      method: 'GET',
      url: '/test/etag',
      headers: { 'if-none-match': `W/${res.headers.etag}` },
    });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
  });

  test('responses of routes without a cache policy are no-store', async () => {
    const res = await app.inject({ method: 'GET', url: SERVICE_PATHS.liveness });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.etag).toBeUndefined();
  });
});

describe('metrics', () => {
  test('exposes every contract metric name and the request histogram by route template', async () => {
    await app.inject({ method: 'GET', url: SERVICE_PATHS.liveness });
    const text = await app.metrics.registry.metrics();
    expect(text).toContain(
      'http_request_duration_seconds_count{method="GET",route="/api/v1/scaling/health/liveness",status_code="200"}',
    );
    for (const name of [
      ...Object.values(SERVICE_METRICS),
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });
});

describe('request log', () => {
  test('writes one line per request, carrying the edge request id and the status', async () => {
    const lines: Record<string, unknown>[] = [];
    const logged = await buildApp(offlineConfig('info'), {
      logStream: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    try {
      await logged.ready();
      lines.length = 0;
      const header = REQUEST_ID_HEADER.toLowerCase();
      await logged.inject({ method: 'GET', url: SERVICE_PATHS.liveness, headers: { [header]: 'edge-req-1' } });
      await logged.inject({ method: 'GET', url: '/api/v1/users/not-a-number' });
      const requestLines = lines.filter((l) => l.req !== undefined || l.res !== undefined);
      expect(requestLines).toHaveLength(2);
      expect(requestLines[0]).toMatchObject({
        reqId: 'edge-req-1',
        msg: 'request completed',
        // The client's address too (it was dropped when the hook logged a plain object under `req`).
        req: { method: 'GET', url: SERVICE_PATHS.liveness, remoteAddress: '127.0.0.1' },
        res: { statusCode: 200 },
      });
      expect(typeof requestLines[0].responseTime).toBe('number');
      // Without the header Fastify generates an id; a rejected request is logged too.
      expect(requestLines[1]).toMatchObject({ res: { statusCode: 400 }, msg: 'request completed' });
      expect(requestLines[1].reqId).not.toBe('edge-req-1');
    } finally {
      await logged.close();
    }
  });
});

describe('fault injection', () => {
  const blockUrl = API_PREFIX + FAULT_ROUTES.blockEventLoop;

  test('the block route does not exist unless FAULT_INJECTION is true', async () => {
    const res = await app.inject({ method: 'POST', url: blockUrl, payload: { seconds: 0 } });
    expect(res.statusCode).toBe(404);
  });

  test('with FAULT_INJECTION=true it needs the token, then blocks the event loop for the seconds asked', async () => {
    const faulty = await buildApp(offlineConfig('silent', { FAULT_INJECTION: 'true' }));
    try {
      const denied = await faulty.inject({ method: 'POST', url: blockUrl, payload: { seconds: 0 } });
      expect(denied.statusCode).toBe(401);
      const res = await faulty.inject({
        method: 'POST',
        url: blockUrl,
        payload: { seconds: 0.3 },
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(res.statusCode).toBe(202);
      expect(res.json()).toEqual({ blocking_seconds: 0.3 });
      // A timer due in 50 ms fires only once the busy loop has returned.
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 50));
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    } finally {
      await faulty.close();
    }
  });
});

test('building the app emits no process warning (no deprecated Fastify option at every pod start)', async () => {
  const emitWarning = jest.spyOn(process, 'emitWarning');
  try {
    const other = await buildApp(offlineConfig('silent'));
    await other.ready();
    await other.close();
    expect(emitWarning.mock.calls.map((c) => String(c[0]))).toEqual([]);
  } finally {
    emitWarning.mockRestore();
  }
});

test('closes at once while Redis is unreachable (a client waiting to reconnect has nothing to end)', async () => {
  const other = await buildApp(offlineConfig('silent'));
  await other.ready();
  // The cluster client tried the closed port and now waits to reconnect, with no connection open.
  const deadline = Date.now() + 5000;
  while (other.redis?.status !== 'reconnecting' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(other.redis?.status).toBe('reconnecting');
  const started = Date.now();
  await other.close();
  // It waited for an 'end' ioredis never emits in this state, for the whole 2 s bound.
  expect(Date.now() - started).toBeLessThan(1000);
});
