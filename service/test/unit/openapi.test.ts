/**
 * The OpenAPI document: generated from the route schemas, served without a token, and
 * checked in at service/openapi.json (`npm run service:openapi` rewrites it).
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { OPENAPI_FILE, renderOpenApi } from '../../scripts/openapi';
import { buildApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { SERVICE_PATHS } from '../../src/contract';

type Response = { content?: { 'application/json'?: { schema?: unknown } } };
type Document = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, Response> }>> };

let app: FastifyInstance;
let served: Document;

beforeAll(async () => {
  app = await buildApp(
    loadConfig({
      POSTGRES_SERVER: '127.0.0.1:1',
      POSTGRES_PASSWORD: 'x',
      CACHE_ENABLED: 'false',
      MANAGEMENT_TOKEN: 'unit-test-token-0123456789',
    }),
    { logger: false },
  );
  const res = await app.inject({ method: 'GET', url: SERVICE_PATHS.openapi });
  expect(res.statusCode).toBe(200);
  served = res.json();
});

afterAll(async () => {
  await app.close();
});

test('is served at /api/v1/openapi.json without a token, as JSON', async () => {
  const res = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(served.openapi).toBe('3.1.0');
});

test('fails when the checked-in service/openapi.json is stale (run `npm run service:openapi`)', async () => {
  const checkedIn = readFileSync(OPENAPI_FILE, 'utf8');
  const current = await renderOpenApi();
  expect({ upToDate: checkedIn === current, fix: 'npm run service:openapi' }).toEqual({
    upToDate: true,
    fix: 'npm run service:openapi',
  });
  expect(JSON.parse(checkedIn)).toEqual(served);
});

test('lists every API route: the data, health and management areas and the document itself', () => {
  expect(Object.keys(served.paths).sort()).toEqual(
    [
      '/users',
      '/users/search',
      '/users/{id}',
      '/projects',
      '/projects/by-setting',
      '/projects/{id}',
      '/activity',
      '/activity/recent-changes',
      '/cache/stats',
      '/cache/clear-tags',
      '/cache/keys',
      '/cache/warm',
      '/database/slow-queries',
      '/database/index-usage',
      '/database/index-recommendations',
      '/database/cache-hit-ratio',
      '/scaling/health/liveness',
      '/scaling/health/readiness',
      '/scaling/health/deep',
      '/scaling/replication/status',
      '/openapi.json',
    ]
      .map((p) => `/api/v1${p}`)
      .sort(),
  );
});

test('every operation has a success body schema and answers 4XX and 5XX with the one error body', () => {
  const missing: string[] = [];
  for (const [path, operations] of Object.entries(served.paths)) {
    for (const [method, { responses }] of Object.entries(operations)) {
      const success = Object.entries(responses).filter(([code]) => /^2\d\d$/.test(code));
      const described = success.every(([code, r]) => code === '204' || r.content?.['application/json']?.schema);
      if (success.length === 0 || !described) missing.push(`${method} ${path}: success`);
      for (const code of ['4XX', '5XX']) {
        if (responses[code]?.content?.['application/json']?.schema === undefined)
          missing.push(`${method} ${path}: ${code}`);
        else
          expect(responses[code].content!['application/json']!.schema).toEqual({ $ref: '#/components/schemas/Error' });
      }
    }
  }
  expect(missing).toEqual([]);
});
