/**
 * The fuzz of test/helpers/fuzz.ts against real PostgreSQL (primary + replica) and the
 * Redis Cluster: generated requests for every OpenAPI operation reach the SQL, and none
 * gets a 5xx (health routes may report their own status), every error is in the one
 * shape and names its field, and no message repeats unvalidated input. Small and
 * time-bounded for CI; service/bench/fuzz.ts runs thousands per route, also through nginx.
 */
import type { FastifyInstance } from 'fastify';
import { fuzzRoutes, injectInto, isHealthBody, routeName, routesOf } from '../helpers/fuzz';
import { type DataTier, startDataTier, TOKEN } from '../helpers/servers';

let tier: DataTier;
let app: FastifyInstance;

beforeAll(async () => {
  tier = await startDataTier({ replicas: 1 });
  await tier.migrate();
  app = await tier.app();
});

afterAll(async () => {
  await tier?.stop();
});

test('generated requests for every route on real servers: no 5xx, one error shape, no echo', async () => {
  // GIVEN some rows for the generated ids to find
  for (let i = 1; i <= 5; i++) {
    await app.inject({
      method: 'POST',
      url: '/api/v1/users',
      payload: { email: `fuzz${i}@example.com`, username: `fuzz_${i}` },
    });
  }
  // WHEN up to 100 requests per route (at most 5 s each) are sent, THEN none fails
  const counts = await fuzzRoutes(injectInto(app), {
    token: TOKEN,
    numRuns: 100,
    timeLimitMs: 5000,
    allow5xx: (route, body) => isHealthBody(route, body),
  });
  expect(Object.keys(counts)).toEqual(routesOf().map(routeName));
  expect(Object.values(counts).every((n) => n >= 10)).toBe(true);
}, 180_000);
