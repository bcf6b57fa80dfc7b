/**
 * The cache (`app.cache`) over the Redis Cluster client, counting hits and
 * misses in the metrics; its local tier subscribes once the app is ready.
 */
import fp from 'fastify-plugin';
import { Cache } from '../cache/cache';

declare module 'fastify' {
  interface FastifyInstance {
    cache: Cache;
  }
}

export const cachePlugin = fp(
  async (app) => {
    const { defaultTtlSeconds, localTtlSeconds, localMaxEntries } = app.config.cache;
    const cache = new Cache(app.redis, { defaultTtlSeconds, localTtlSeconds, localMaxEntries }, app.log, {
      onHit: () => app.metrics.cacheHits.inc(),
      onLocalHit: () => app.metrics.cacheLocalHits.inc(),
      onMiss: () => app.metrics.cacheMisses.inc(),
      onError: () => app.metrics.cacheErrors.inc(),
    });
    app.decorate('cache', cache);
    app.addHook('onReady', async () => cache.start());
    app.addHook('onClose', () => cache.stop());
  },
  { name: 'cache', dependencies: ['env', 'metrics', 'redis'], fastify: '5.x' },
);
