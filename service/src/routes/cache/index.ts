/** Cache management (bearer token): stats per master, tag invalidation, bounded key scan, warm-up. */
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyInstance } from 'fastify';
import { KEY_PREFIX, parseInfo } from '../../cache/cache';
import { getUser, recentActiveUserIds } from '../../domain/users';
import { listByOwner } from '../../domain/projects';
import { requireToken } from '../../http/auth';
import { HttpError } from '../../http/errors';
import { withErrors } from '../../schemas/common';
import {
  MANAGEMENT,
  cacheStatsResponse,
  clearTagsBody,
  clearTagsResponse,
  keysQuery,
  keysResponse,
  warmBody,
  warmResponse,
} from '../../schemas/management';
import { ctxOf } from '../context';

const nodeName = (n: { options: { host?: string; port?: number } }) => `${n.options.host}:${n.options.port}`;

/** Loads the hot set (newest active users and their project lists) into the cache. */
export async function warmCache(app: FastifyInstance, users = 100): Promise<{ users: number; available: boolean }> {
  if (!app.cache.available) return { users: 0, available: false };
  const ctx = ctxOf(app);
  const ids = await recentActiveUserIds(ctx, users);
  await Promise.all(ids.map(async (id) => Promise.all([getUser(ctx, id), listByOwner(ctx, id, 20)])));
  return { users: ids.length, available: true };
}

const cacheRoutes: FastifyPluginAsyncJsonSchemaToTs = async (app) => {
  // onRequest: the token is checked before the input, so a caller without it learns nothing of the schema.
  app.addHook('onRequest', requireToken(app.config.managementToken));

  const stats = { ...MANAGEMENT, response: withErrors({ 200: cacheStatsResponse }) };
  app.get('/cache/stats', { schema: stats }, async () => {
    const nodes = await Promise.all(
      app.cache.masters().map(async (n) => {
        try {
          const info = parseInfo(await n.info());
          const hits = Number(info.keyspace_hits ?? 0);
          const misses = Number(info.keyspace_misses ?? 0);
          return {
            node: nodeName(n),
            status: 'up' as const,
            keys: await n.dbsize(),
            hits,
            misses,
            hit_ratio: hits + misses === 0 ? null : hits / (hits + misses),
            used_memory_bytes: Number(info.used_memory ?? 0),
            maxmemory_bytes: Number(info.maxmemory ?? 0),
            evicted_keys: Number(info.evicted_keys ?? 0),
          };
        } catch (err) {
          return { node: nodeName(n), status: 'down' as const, error: (err as Error).message };
        }
      }),
    );
    const { hits, localHits, misses, errors, local } = app.cache;
    return {
      enabled: app.config.cache.enabled,
      available: app.cache.available,
      this_pod: {
        hits,
        misses,
        errors,
        hit_ratio: hits + misses === 0 ? null : hits / (hits + misses),
        local_tier: {
          enabled: local.enabled,
          serving: app.cache.localServing,
          entries: local.size,
          hits: localHits,
          subscribed_to: app.cache.subscribedTo ?? null,
        },
      },
      nodes,
    };
  });

  const clearTags = { ...MANAGEMENT, body: clearTagsBody, response: withErrors({ 200: clearTagsResponse }) };
  app.post('/cache/clear-tags', { schema: clearTags }, async (request) => ({
    tags: request.body.tags,
    deleted_keys: await app.cache.invalidateTags(request.body.tags),
  }));

  /** Keys matching `pattern` (below our prefix), scanning every master with SCAN, at most `limit`. */
  app.get(
    '/cache/keys',
    { schema: { ...MANAGEMENT, querystring: keysQuery, response: withErrors({ 200: keysResponse }) } },
    async (request) => {
      const { pattern, limit } = request.query;
      const keys: string[] = [];
      try {
        for (const n of app.cache.masters()) {
          let cursor = '0';
          do {
            const [next, batch] = await n.scan(cursor, 'MATCH', KEY_PREFIX + pattern, 'COUNT', 500);
            cursor = next;
            for (const k of batch) if (keys.length < limit) keys.push(k.slice(KEY_PREFIX.length));
          } while (cursor !== '0' && keys.length < limit);
          if (keys.length >= limit) break;
        }
      } catch (err) {
        // A master that fails the scan (reconnecting, failing over) is Redis' state, not a bug: retryable.
        request.log.warn({ err: (err as Error).message }, 'cache key scan failed');
        throw new HttpError(503, 'the cache is unavailable; retry shortly');
      }
      return { pattern, limit, truncated: keys.length >= limit, keys };
    },
  );

  app.post(
    '/cache/warm',
    { schema: { ...MANAGEMENT, body: warmBody, response: withErrors({ 200: warmResponse }) } },
    async (request) => warmCache(app, request.body?.users ?? 100),
  );
};

export default cacheRoutes;
