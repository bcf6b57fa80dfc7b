/**
 * Property-based fuzz of every operation of the OpenAPI document through app.inject
 * (test/helpers/fuzz.ts): no 500, every error in the one shape, every 4xx names a field,
 * no message repeats unvalidated input. No database here (closed ports): a request that
 * passes validation ends in the database's retryable 503, the only 5xx allowed; the
 * integration lane runs the same fuzz against real PostgreSQL, where no 5xx is allowed.
 */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app';
import { DATABASE_UNAVAILABLE_MESSAGE, PRIMARY_UNAVAILABLE_MESSAGE } from '../../src/http/errors';
import { offlineConfig, TOKEN } from '../helpers/offline';
import { fuzzRoutes, injectInto, isHealthBody, routeName, routesOf } from '../helpers/fuzz';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(offlineConfig());
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

/** Reached the database: refused by the closed port itself, or at once once the primary counts as down. */
const DB_DOWN = [DATABASE_UNAVAILABLE_MESSAGE, PRIMARY_UNAVAILABLE_MESSAGE];

test('generated requests for every route: no 500, one error shape, no echo', async () => {
  const counts = await fuzzRoutes(injectInto(app), {
    token: TOKEN,
    numRuns: 60,
    timeLimitMs: 5000,
    allow5xx: (route, body, status) =>
      status === 503 && (DB_DOWN.includes((body as { message?: string }).message ?? '') || isHealthBody(route, body)),
  });
  // Every route was exercised (the time bound may cut a slow one short, never to nothing).
  expect(Object.values(counts).every((n) => n >= 10)).toBe(true);
  expect(Object.keys(counts)).toEqual(routesOf().map(routeName));
}, 120_000);
