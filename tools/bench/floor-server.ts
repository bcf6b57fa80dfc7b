/**
 * The floor server of `npm run bench:floor`: the cached GET of the API (`GET /api/v1/users/:id`) answered
 * from the service's in-process tier, with the per-request duties issue 19 keeps added one rung at a time,
 * each from the service's own code. `--rung N` (1-5) runs rungs 1 to N:
 *
 * 1. route: the route with the service's params and response schemas (its Ajv validator compiler and
 *    fast-json-stringify), a hit in the service's LocalCache (parsed once per entry, frozen and shared,
 *    as Cache.get does), logger off;
 * 2. access log: the service's server options (logger at `info`, the request id from `X-Request-ID`) and
 *    its access line, written by its log stream (one synchronous write per event-loop turn, to stdout);
 * 3. metrics: the service's metrics plugin (the request-duration histogram, default metrics);
 * 4. ETag: the service's HTTP caching (sha1 ETag, If-None-Match, Cache-Control);
 * 5. input hooks: the service's error handlers, text-scalar and storable checks and its draining hook.
 *
 * What the full service does beyond rung 5 on a cached GET: the Cache class around the LocalCache
 * (counters, hooks), the read-your-writes check and, for what the in-process tier misses, a Redis round trip.
 * Prints `listening <port>` once it accepts connections.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { API_PREFIX } from '../../service/src/contract';
import { installAccessLog, installRequestChecks, serverOptions } from '../../service/src/app';
import { KEY_PREFIX } from '../../service/src/cache/cache';
import { deepFreeze, LocalCache } from '../../service/src/cache/local';
import { userKey } from '../../service/src/domain/users';
import { installHttpCaching } from '../../service/src/http/http-cache';
import { validatorCompiler } from '../../service/src/http/input';
import { metricsPlugin } from '../../service/src/plugins/metrics';
import { REVALIDATE } from '../../service/src/routes/context';
import { idParam, withErrors } from '../../service/src/schemas/common';
import { user } from '../../service/src/schemas/users';
import { serviceLogStream } from '../../service/src/server';
import { serveForBench } from './baseline-server';
import { intOption } from './report';

/** What each rung adds, by rung number - 1. */
export const FLOOR_RUNGS = ['route', 'access log', 'metrics', 'ETag', 'input hooks'] as const;

/** The users the floor serves: ids FLOOR_FIRST_ID ... FLOOR_FIRST_ID + count - 1. */
export const FLOOR_FIRST_ID = 1000;

/** A user row as the cache holds it (the API's JSON). */
function userRow(id: number): string {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, id % 86400)).toISOString();
  return JSON.stringify({
    id: String(id),
    email: `bench-${id}@bench.test`,
    username: `bench-${id}`,
    full_name: `Bench User ${id}`,
    is_active: true,
    created_at: at,
    updated_at: at,
  });
}

/**
 * The floor server's app at `rung` (1 to FLOOR_RUNGS.length), serving `users` users from id FLOOR_FIRST_ID.
 * From rung 2 it logs to `logStream` (the service's log stream on stdout by default).
 */
export async function floorApp(
  rung: number,
  users: number,
  logStream: DestinationStream = serviceLogStream(),
): Promise<FastifyInstance> {
  if (!Number.isInteger(rung) || rung < 1 || rung > FLOOR_RUNGS.length) {
    throw new Error(`--rung must be 1-${FLOOR_RUNGS.length} (got ${rung})`);
  }
  // Entries live for the whole run: the floor measures a hit, not a refill.
  const local = new LocalCache(24 * 3600 * 1000, users);
  for (let i = 0; i < users; i++) {
    local.set(KEY_PREFIX + userKey(String(FLOOR_FIRST_ID + i)), userRow(FLOOR_FIRST_ID + i), 0);
  }
  const app = Fastify(rung >= 2 ? serverOptions('info', { logStream }) : { logger: false });
  if (rung >= 2) installAccessLog(app);
  if (rung >= 3) await app.register(metricsPlugin);
  if (rung >= 5) {
    app.decorate('draining', false);
    // Before the ETag's onSend hook, as in the service.
    installRequestChecks(app);
  }
  if (rung >= 4) installHttpCaching(app);
  app.setValidatorCompiler(validatorCompiler());
  app.get<{ Params: { id: string } }>(
    `${API_PREFIX}/users/:id`,
    {
      schema: { params: idParam, response: withErrors({ 200: user }) },
      ...(rung >= 4 ? { config: { cacheControl: REVALIDATE } } : {}),
    },
    async (request, reply) => {
      const entry = local.get(KEY_PREFIX + userKey(request.params.id));
      if (!entry) return reply.code(404).send({ error: 'Not Found', message: `user ${request.params.id} not found` });
      return (entry.value ??= deepFreeze(JSON.parse(entry.raw)));
    },
  );
  return app;
}

export async function main(argv: readonly string[] = []): Promise<number> {
  return serveForBench(
    await floorApp(intOption(argv, '--rung', FLOOR_RUNGS.length), intOption(argv, '--users', 10000)),
  );
}
