import type { Cache, CacheEntryOptions } from '../cache/cache';
import type { Database } from '../db/database';

/** What a domain function needs: the pools, the cache, and the caller's last write position. */
export interface Ctx {
  readonly db: Database;
  readonly cache: Cache;
  /** From the caller's last write (read-your-writes); set = bypass the shared cache. */
  readonly minLsn?: string;
  /** Replica lag bound, used for the delayed second invalidation. */
  readonly replicaMaxLagSeconds: number;
}

/**
 * Cached read. A caller inside its read-your-writes window skips the shared
 * cache (which another client may have filled from a replica that had not yet
 * replayed the write) and reads a server that has.
 */
export function cachedRead<T>(ctx: Ctx, key: string, opts: CacheEntryOptions<T>, load: () => Promise<T>): Promise<T> {
  return ctx.minLsn ? load() : ctx.cache.cached(key, opts, load);
}

/**
 * Invalidates after a write, and once more when any replica we read from has
 * replayed it: a miss served by a lagging replica in between could otherwise
 * put the old row back in the cache until its TTL.
 */
export async function invalidateAfterWrite(ctx: Ctx, tags: string[]): Promise<void> {
  await ctx.cache.invalidateTags(tags);
  setTimeout(() => void ctx.cache.invalidateTags(tags), (ctx.replicaMaxLagSeconds + 1) * 1000).unref();
}
