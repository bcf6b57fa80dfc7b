/**
 * Issue 14: no client input reaches a 500, types are not coerced, one error shape.
 * Like app.test.ts, the database and Redis are closed loopback ports: a request that
 * passes validation and reaches the database answers 503 ("unavailable"), never 500,
 * and one that is refused earlier answers its 4xx.
 */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { REQUEST_ID_HEADER, SERVICE_LIMITS } from '../../src/contract';
import { issuePosition, LSN_COOKIE, MIN_LSN_HEADER, minLsnOf } from '../../src/http/consistency';
import { DATABASE_UNAVAILABLE_MESSAGE, locationOf, PRIMARY_UNAVAILABLE_MESSAGE } from '../../src/http/errors';

const TOKEN = 'unit-test-token-0123456789';
const CLOSED = '127.0.0.1:1';
/** Reached the database: refused by the closed port itself, or at once once the primary counts as down. */
const DB_DOWN = {
  error: 'Service Unavailable',
  message: expect.stringMatching(
    new RegExp(
      `^(${[DATABASE_UNAVAILABLE_MESSAGE, PRIMARY_UNAVAILABLE_MESSAGE].map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`,
    ),
  ),
};

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(
    loadConfig({
      POSTGRES_SERVER: CLOSED,
      POSTGRES_PASSWORD: 'x',
      DB_POOL_TIMEOUT: '1',
      CACHE_ENABLED: 'false',
      MANAGEMENT_TOKEN: TOKEN,
      LOG_LEVEL: 'silent',
    }),
  );
  app.get('/test/boom', async () => {
    throw new Error('boom');
  });
  app.get('/test/etag', { config: { cacheControl: 'private, no-cache' } }, async () => ({ hello: 'world' }));
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

const send = (method: 'POST' | 'PATCH', url: string, payload: string, headers: Record<string, string> = {}) =>
  app.inject({ method, url: `/api/v1${url}`, payload, headers: { 'content-type': 'application/json', ...headers } });
const get = (url: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url: `/api/v1${url}`, headers });
const bad = (field: string, message: string) => ({ error: 'Bad Request', message, field });

describe('strings PostgreSQL cannot store', () => {
  test.each([
    ['POST', '/users', { email: 'a@b.co', username: 'alice', full_name: 'a\u0000b' }, 'body.full_name'],
    ['POST', '/projects', { owner_id: '1', name: 'p\u0000', settings: {} }, 'body.name'],
    ['PATCH', '/projects/1', { settings: { nested: ['x\u0000'] } }, 'body.settings'],
    ['PATCH', '/projects/1', { settings: { 'k\u0000': 1 } }, 'body.settings'],
    ['POST', '/activity', { user_id: '1', action: 'login', details: { ip: '\u0000' } }, 'body.details'],
  ] as const)('fails when %s %s carries a NUL (%#)', async (method, url, body, field) => {
    const res = await send(method, url, JSON.stringify(body));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(
      bad(field, `${field} contains a NUL character (\\u0000), which PostgreSQL cannot store`),
    );
  });

  test.each([
    ['/users/search?q=a%00b', 'querystring.q'],
    ['/projects/by-setting?key=k&value=%00', 'querystring.value'],
  ])('fails when the query %s carries a NUL', async (url, field) => {
    const res = await get(url);
    expect(res.json()).toEqual(
      bad(field, `${field} contains a NUL character (\\u0000), which PostgreSQL cannot store`),
    );
  });

  test.each([
    ['/users', '{"email":"a@b.co","username":"alice","full_name":"\\ud800"}', 'body.full_name'],
    ['/projects', '{"owner_id":"1","name":"p","settings":{"a":"x\\udc00y"}}', 'body.settings'],
    ['/projects', '{"owner_id":"1","name":"p","settings":{"\\ud800":1}}', 'body.settings'],
  ])('fails when %s carries a lone surrogate (%#)', async (url, payload, field) => {
    const res = await send('POST', url, payload);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(
      bad(field, `${field} contains a lone UTF-16 surrogate (not valid Unicode), which PostgreSQL cannot store`),
    );
  });
});

describe('JSON fields: depth and size', () => {
  test('fails when settings are nested 4,500 levels deep', async () => {
    const deep = '{"a":'.repeat(4500) + '1' + '}'.repeat(4500);
    const res = await send('POST', '/projects', `{"owner_id":"1","name":"p","settings":${deep}}`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(
      bad('body.settings', `body.settings is nested deeper than ${SERVICE_LIMITS.jsonDepth} levels`),
    );
  });

  test('fails when activity details are larger than the JSON size bound', async () => {
    const details = { blob: 'x'.repeat(SERVICE_LIMITS.jsonBytes) };
    const res = await send('POST', '/activity', JSON.stringify({ user_id: '1', action: 'upload', details }));
    expect(res.json()).toEqual(
      bad('body.details', `body.details is larger than ${SERVICE_LIMITS.jsonBytes} bytes as JSON`),
    );
  });

  test('settings at the depth bound pass validation (and reach the database)', async () => {
    const depth = SERVICE_LIMITS.jsonDepth - 1;
    const nested = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    const res = await send('PATCH', '/projects/1', `{"settings":${nested}}`);
    expect(res.json()).toEqual(DB_DOWN);
  });
});

describe('strict timestamps', () => {
  test.each(['from', 'to'])('fails when %s is a leap second', async (param) => {
    const res = await get(`/activity?user_id=1&${param}=2026-06-30T23:59:60Z`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(
      bad(`querystring.${param}`, `querystring.${param} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z`),
    );
  });

  test.each(['2026-02-30T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01 00:00:00Z', '2026-01-01T00:00:00'])(
    'fails when since is %s',
    async (since) => {
      const res = await get(`/activity/recent-changes?since=${encodeURIComponent(since)}`);
      expect(res.json().field).toBe('querystring.since');
    },
  );

  test('a valid timestamp with an offset passes', async () => {
    const res = await get(`/activity/recent-changes?since=${encodeURIComponent('2026-01-01T00:00:00.5+02:00')}`);
    expect(res.json()).toEqual(DB_DOWN);
  });
});

describe('no type coercion', () => {
  test('fails when the email is a one-element array', async () => {
    const res = await send('POST', '/users', '{"email":["a@b.co"],"username":"alice"}');
    expect(res.json()).toEqual(bad('body.email', 'body.email must be string'));
  });

  test('fails when the username is a number (1e400)', async () => {
    const res = await send('POST', '/users', '{"email":"a@b.co","username":1e400}');
    expect(res.json()).toEqual(bad('body.username', 'body.username must be string'));
  });

  test('fails when is_active is null', async () => {
    const res = await send('PATCH', '/users/1', '{"is_active":null}');
    expect(res.json()).toEqual(bad('body.is_active', 'body.is_active must be boolean'));
  });

  test('fails when a query parameter is repeated', async () => {
    const res = await get('/users/search?q=a&q=b');
    expect(res.json()).toEqual(bad('querystring.q', 'querystring.q must be string'));
  });

  test.each(['-Infinity', 'Infinity', 'NaN', '1e400', '0x10', '5.0.1'])('fails when the limit is %s', async (limit) => {
    const res = await get(`/activity/recent-changes?limit=${limit}`);
    expect(res.statusCode).toBe(400);
    expect(res.json().field).toBe('querystring.limit');
  });

  test('query numbers and booleans are still read from their text', async () => {
    expect((await get('/users/search?q=a&limit=5&active=false')).json()).toEqual(DB_DOWN);
  });
});

describe('the request', () => {
  test('fails when the body is text/plain', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/users',
      payload: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      error: 'Unsupported Media Type',
      message: 'content-type "text/plain" is not accepted; send application/json',
      field: 'headers.content-type',
    });
  });

  test('fails when a management endpoint gets bad input and no token: 401 comes first', async () => {
    const res = await send('POST', '/cache/clear-tags', '{"nope":1}');
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({
      error: 'Unauthorized',
      message: 'a valid management token is required: send Authorization: Bearer <token>',
      field: 'headers.authorization',
    });
  });

  test('fails when the body is larger than the limit, naming the body', async () => {
    const res = await send('POST', '/users', JSON.stringify({ full_name: 'x'.repeat(SERVICE_LIMITS.bodyBytes) }));
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({
      error: 'Payload Too Large',
      message: `request body is larger than ${SERVICE_LIMITS.bodyBytes} bytes`,
      field: 'body',
    });
  });

  test('an unknown field with an odd name is refused without echoing it', async () => {
    const res = await send('POST', '/users', '{"email":"a@b.co","username":"alice","<img src=x>":1}');
    expect(res.json()).toEqual(
      bad('body', 'body has a field that is not accepted; accepted: email, username, full_name'),
    );
  });

  test('an unknown route with an odd path is not echoed', async () => {
    const res = await get('/nope/%3Cscript%3E');
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toMatch(/script/);
    expect(res.json()).toEqual({ error: 'Not Found', message: 'no route matches GET on this path', field: 'url' });
  });

  test('fails when the path is not valid percent-encoding', async () => {
    const res = await get('/users/%0');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(bad('url', 'the URL path is not valid percent-encoding'));
  });

  test('fails when a path parameter is longer than the router takes', async () => {
    const res = await get(`/users/${'1'.repeat(150)}`);
    expect(res.statusCode).toBe(414);
    expect(res.json()).toEqual({
      error: 'URI Too Long',
      message: 'a path parameter is longer than 100 characters',
      field: 'url',
    });
  });

  test('Location is the new resource, without the query string', () => {
    expect(locationOf('/api/v1/users?ref=x', '25')).toBe('/api/v1/users/25');
    expect(locationOf('/api/v1/projects', '7')).toBe('/api/v1/projects/7');
  });
});

describe('request ids', () => {
  test('a well-formed X-Request-ID is kept', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/test/boom',
      headers: { [REQUEST_ID_HEADER]: 'edge-1.a_b:c' },
    });
    expect(res.json().message).toBe('internal error; see the service log for request edge-1.a_b:c');
  });

  test.each(['<script>alert(1)</script>', 'x'.repeat(129), 'a b'])(
    'a malformed X-Request-ID (%#) is replaced',
    async (id) => {
      const res = await app.inject({ method: 'GET', url: '/test/boom', headers: { [REQUEST_ID_HEADER]: id } });
      expect(res.statusCode).toBe(500);
      expect(res.json().message).toMatch(/^internal error; see the service log for request [A-Za-z0-9-]+$/);
      expect(res.body).not.toContain(id);
    },
  );
});

describe('HTTP', () => {
  test('a 304 has no content-length', async () => {
    const first = await app.inject({ method: 'GET', url: '/test/etag' });
    const res = await app.inject({
      method: 'GET',
      url: '/test/etag',
      headers: { 'if-none-match': first.headers.etag! },
    });
    expect(res.statusCode).toBe(304);
    expect(res.headers['content-length']).toBeUndefined();
  });
});

describe('read-your-writes positions', () => {
  const SECRET = 'unit-test-token-0123456789';
  const requestWith = (headers: Record<string, string>) => ({ headers }) as Parameters<typeof minLsnOf>[0];

  test.each(['%', '%ZZ', '%E0%A4%A', 'FFFFFFFF%2FFFFFFFFF'])(
    'fails when the cookie is %s: it is ignored',
    async (v) => {
      expect(minLsnOf(requestWith({ cookie: `${LSN_COOKIE}=${v}` }), SECRET)).toBeUndefined();
      expect((await get('/users/1', { cookie: `${LSN_COOKIE}=${v}` })).json()).toEqual(DB_DOWN);
    },
  );

  test('a forged position in the header is ignored', () => {
    expect(minLsnOf(requestWith({ [MIN_LSN_HEADER]: 'FFFFFFFF/FFFFFFFF' }), SECRET)).toBeUndefined();
  });

  test('a position the service issued is honoured, from the header or the cookie', () => {
    const token = issuePosition('16/B374D848', SECRET);
    expect(minLsnOf(requestWith({ [MIN_LSN_HEADER]: token }), SECRET)).toBe('16/B374D848');
    expect(minLsnOf(requestWith({ cookie: `a=b; ${LSN_COOKIE}=${encodeURIComponent(token)}` }), SECRET)).toBe(
      '16/B374D848',
    );
  });

  test('a position signed with another secret, altered, or expired is ignored', () => {
    const token = issuePosition('16/B374D848', SECRET);
    expect(minLsnOf(requestWith({ [MIN_LSN_HEADER]: token }), 'another-secret-0123456789')).toBeUndefined();
    expect(minLsnOf(requestWith({ [MIN_LSN_HEADER]: token.replace('16/', '17/') }), SECRET)).toBeUndefined();
    const expired = issuePosition('16/B374D848', SECRET, Date.now() - 60_000);
    expect(minLsnOf(requestWith({ [MIN_LSN_HEADER]: expired }), SECRET)).toBeUndefined();
  });
});

describe('the recent-changes feed', () => {
  test.each(['create', 'update', 'delete'])('fails when a client posts the reserved action %s', async (action) => {
    const res = await send('POST', '/activity', JSON.stringify({ user_id: '1', action }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(
      bad('body.action', 'body.action must not be create, update or delete: the API records those changes itself'),
    );
  });
});
