/**
 * The floor ladder of `npm run bench:floor`: each rung of the floor server does the duty it is named
 * for (so the ladder's steps measure what its table says), and the table's figures are medians of
 * per-round figures.
 */
import type { FastifyInstance } from 'fastify';
import { FLOOR_FIRST_ID, FLOOR_RUNGS, floorApp } from '../tools/bench/floor-server';
import { floorTable } from '../tools/bench/floor';

const apps: FastifyInstance[] = [];
async function rung(n: number, lines: string[] = []): Promise<FastifyInstance> {
  const app = await floorApp(n, 100, { write: (line: string) => void lines.push(line) });
  apps.push(app);
  return app;
}
afterAll(() => Promise.all(apps.map((a) => a.close())));

const path = (id: number | string) => `/api/v1/users/${id}`;

test('rung 1 serves the cached user through the response schema, and nothing else', async () => {
  const lines: string[] = [];
  const app = await rung(1, lines);
  const res = await app.inject({ method: 'GET', url: path(FLOOR_FIRST_ID + 7) });
  expect(res.statusCode).toBe(200);
  expect(res.json()).toEqual({
    id: String(FLOOR_FIRST_ID + 7),
    email: `bench-${FLOOR_FIRST_ID + 7}@bench.test`,
    username: `bench-${FLOOR_FIRST_ID + 7}`,
    full_name: `Bench User ${FLOOR_FIRST_ID + 7}`,
    is_active: true,
    created_at: expect.stringMatching(/^2026-01-01T/),
    updated_at: expect.stringMatching(/^2026-01-01T/),
  });
  expect(res.headers.etag).toBeUndefined();
  expect(lines).toEqual([]);
  // The params schema is in force: a non-numeric id never reaches the handler.
  expect((await app.inject({ method: 'GET', url: path('abc') })).statusCode).toBe(400);
  // Only the users it was given.
  expect((await app.inject({ method: 'GET', url: path(FLOOR_FIRST_ID + 100) })).statusCode).toBe(404);
});

test("rung 2 writes the service's access line, with the edge's request id", async () => {
  const lines: string[] = [];
  const app = await rung(2, lines);
  const res = await app.inject({ method: 'GET', url: path(FLOOR_FIRST_ID), headers: { 'x-request-id': 'abc123' } });
  expect(res.statusCode).toBe(200);
  expect(lines).toHaveLength(1);
  const line = JSON.parse(lines[0]);
  expect(line).toMatchObject({ level: 30, reqId: 'abc123', msg: 'request completed', res: { statusCode: 200 } });
  expect(line.req).toMatchObject({ method: 'GET', url: path(FLOOR_FIRST_ID) });
});

test('rung 3 records the request-duration histogram', async () => {
  const app = await rung(3);
  await app.inject({ method: 'GET', url: path(FLOOR_FIRST_ID) });
  const text = await app.metrics.registry.metrics();
  expect(text).toMatch(
    /http_request_duration_seconds_count\{[^}]*route="\/api\/v1\/users\/:id"[^}]*status_code="200"\} 1/,
  );
});

test('rung 4 sends the ETag and Cache-Control, and answers a matching If-None-Match with 304', async () => {
  const app = await rung(4);
  const first = await app.inject({ method: 'GET', url: path(FLOOR_FIRST_ID) });
  expect(first.headers.etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
  expect(first.headers['cache-control']).toBe('private, no-cache');
  const again = await app.inject({
    method: 'GET',
    url: path(FLOOR_FIRST_ID),
    headers: { 'if-none-match': String(first.headers.etag) },
  });
  expect(again.statusCode).toBe(304);
  expect(again.body).toBe('');
});

test("rung 5 answers bad input with the service's JSON error (field named)", async () => {
  const app = await rung(5);
  const res = await app.inject({ method: 'GET', url: path('abc') });
  expect(res.statusCode).toBe(400);
  expect(res.json()).toMatchObject({ error: 'Bad Request', field: 'params.id' });
  const missing = await app.inject({ method: 'GET', url: '/nowhere' });
  expect(missing.statusCode).toBe(404);
  expect(missing.json()).toMatchObject({ error: 'Not Found' });
  expect((await app.inject({ method: 'GET', url: path(FLOOR_FIRST_ID) })).headers.etag).toBeDefined();
});

test('a rung outside the ladder is refused', async () => {
  await expect(floorApp(0, 1)).rejects.toThrow(`--rung must be 1-${FLOOR_RUNGS.length} (got 0)`);
  await expect(floorApp(FLOOR_RUNGS.length + 1, 1)).rejects.toThrow(/--rung must be/);
});

test("the floor table's ratio and step are medians of per-round figures, not ratios of medians", () => {
  const table = floorTable(
    ['baseline', '1. route', '2. + log'],
    [
      [10, 20, 40],
      [20, 30, 40],
      [30, 60, 50],
    ],
    [0, 0, 2],
    { rounds: 3, seconds: 1, rate: 100 },
  );
  const row = (label: string) =>
    table
      .split('\n')
      .find((l) => l.startsWith(`| ${label} |`))!
      .split(' | ');
  // route: per-round ratios 2, 1.5, 1 -> 1.50 (the ratio of medians would be 30/20 = 1.5 too, so the step
  // checks the difference): per-round steps over the baseline 10, 10, 0 -> 10.0.
  expect(row('1. route').slice(1)).toEqual(['30.0', '20 / 30 / 40', '1.50', '10.0', '0 |']);
  // log: per-round ratios 3, 3, 1.25 -> 3.00, where the ratio of medians is 50 / 20 = 2.5; steps 10, 30, 10 -> 10.0.
  expect(row('2. + log').slice(1)).toEqual(['50.0', '30 / 60 / 50', '3.00', '10.0', '2 |']);
  expect(row('baseline').slice(3, 5)).toEqual(['1.00', '-']);
});
