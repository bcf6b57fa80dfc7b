/** The cache (`app.cache`) over the Redis Cluster client, counting hits and misses in the metrics. */
import { Cache } from '../cache/cache';
import { shared } from './plugin';

declare module 'fastify' {
  interface FastifyInstance {
    cache: Cache;
  }
}

export const cachePlugin = shared(async (app) => {
  app.decorate(
    'cache',
    new Cache(app.redis, { defaultTtlSeconds: app.config.cache.defaultTtlSeconds }, app.log, {
      onHit: () => app.metrics.cacheHits.inc(),
      onMiss: () => app.metrics.cacheMisses.inc(),
      onError: () => app.metrics.cacheErrors.inc(),
    }),
  );
});
