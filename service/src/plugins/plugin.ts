import type { FastifyPluginAsync, FastifyPluginOptions } from 'fastify';

/**
 * Marks a plugin as not encapsulated (what the fastify-plugin package does), so
 * the decorators it adds (db, cache, metrics) are visible to every route.
 */
export function shared<T extends FastifyPluginOptions>(fn: FastifyPluginAsync<T>): FastifyPluginAsync<T> {
  (fn as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return fn;
}
