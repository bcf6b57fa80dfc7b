/**
 * Redis Cluster cache: get/set with TTL jitter, tags that stay correct across
 * hash slots, single-flight loads, and graceful degradation.
 *
 * Tags: each tag is a set of cache keys stored under its own key
 * (`fastnext:tag:<tag>`, so tags spread over the masters). Invalidation reads
 * the set and deletes the members grouped by hash slot (one UNLINK per slot,
 * since multi-key commands must stay within a slot), then the set itself.
 *
 * Degradation: when the cluster is not ready or a command fails or takes longer
 * than `timeoutMs`, the cache acts as empty and callers read the database. A
 * Redis outage therefore never becomes a 5xx.
 */
import type { Cluster } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { groupBySlot } from './key-slot';

export const KEY_PREFIX = 'fastnext:';
const TAG_PREFIX = `${KEY_PREFIX}tag:`;

export interface CacheEntryOptions<T = unknown> {
  /** Seconds; jittered by +-jitter so keys written together do not expire together. */
  readonly ttl?: number;
  readonly tags?: readonly string[];
  /** More tags, from the loaded value (e.g. the owner of a row, known only once it is read). `cached` only. */
  readonly tagsOf?: (value: T) => readonly string[];
}

export interface CacheHooks {
  onHit?(): void;
  onMiss?(): void;
  onError?(): void;
}

export interface CacheSettings {
  readonly defaultTtlSeconds: number;
  /** Fraction of the TTL added or removed at random. @default 0.1 */
  readonly jitter?: number;
  /** Budget of one cache round trip before we give up and use the database. @default 300 */
  readonly timeoutMs?: number;
}

// Adds a member to a tag set and makes the set outlive its longest member (one slot: the tag key).
const TAG_ADD = `redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

type TaggingCluster = Cluster & { fastnextTagAdd(tagKey: string, member: string, ttl: number): Promise<number> };

export class Cache {
  hits = 0;
  misses = 0;
  errors = 0;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly jitter: number;
  private readonly timeoutMs: number;

  constructor(
    readonly redis: Cluster | undefined,
    private readonly settings: CacheSettings,
    private readonly log: FastifyBaseLogger,
    private readonly hooks: CacheHooks = {},
  ) {
    this.jitter = settings.jitter ?? 0.1;
    this.timeoutMs = settings.timeoutMs ?? 300;
    redis?.defineCommand('fastnextTagAdd', { numberOfKeys: 1, lua: TAG_ADD });
  }

  /** True when commands can be sent now; false skips Redis entirely (no waiting on a dead cluster). */
  get available(): boolean {
    return this.redis !== undefined && this.redis.status === 'ready';
  }

  /** TTL with jitter, never below 1 s. */
  jitteredTtl(ttl: number): number {
    const spread = ttl * this.jitter;
    return Math.max(1, Math.round(ttl - spread + Math.random() * 2 * spread));
  }

  private async guard<T>(what: string, op: (r: Cluster) => Promise<T>): Promise<T | undefined> {
    if (!this.available || !this.redis) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        op(this.redis),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
    } catch (err) {
      this.errors++;
      this.hooks.onError?.();
      this.log.warn({ op: what, err: (err as Error).message }, 'cache unavailable; using the database');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  async get<T>(key: string): Promise<T | undefined> {
    const raw = await this.guard('get', (r) => r.get(KEY_PREFIX + key));
    if (raw === undefined || raw === null) {
      this.misses++;
      this.hooks.onMiss?.();
      return undefined;
    }
    this.hits++;
    this.hooks.onHit?.();
    return JSON.parse(raw) as T;
  }

  async set(key: string, value: unknown, opts: CacheEntryOptions = {}): Promise<boolean> {
    const full = KEY_PREFIX + key;
    const ttl = this.jitteredTtl(opts.ttl ?? this.settings.defaultTtlSeconds);
    const tags = opts.tags ?? [];
    // The longest TTL a member can get, so a tag set never expires before its members.
    const tagTtl = Math.ceil((opts.ttl ?? this.settings.defaultTtlSeconds) * (1 + this.jitter)) + 1;
    const ok = await this.guard('set', async (r) => {
      // Tags first: a key that exists is always reachable from its tags.
      await Promise.all(tags.map((t) => (r as TaggingCluster).fastnextTagAdd(TAG_PREFIX + t, full, tagTtl)));
      await r.set(full, JSON.stringify(value), 'EX', ttl);
      return true;
    });
    return ok === true;
  }

  /** Deletes every key carrying any of `tags`; returns how many keys were deleted. */
  async invalidateTags(tags: readonly string[]): Promise<number> {
    const deleted = await this.guard('invalidate', async (r) => {
      const members = new Set<string>();
      for (const t of tags) for (const k of await r.smembers(TAG_PREFIX + t)) members.add(k);
      const counts = await Promise.all(groupBySlot([...members]).map((group) => r.unlink(...group)));
      await Promise.all(tags.map((t) => r.unlink(TAG_PREFIX + t)));
      return counts.reduce((a, b) => a + b, 0);
    });
    return deleted ?? 0;
  }

  /** Deletes single keys (by their unprefixed names). */
  async del(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.guard('del', (r) =>
      Promise.all(groupBySlot(keys.map((k) => KEY_PREFIX + k)).map((g) => r.unlink(...g))),
    );
  }

  /**
   * Returns the cached value of `key`, or runs `loader` once per pod for a cold
   * key (concurrent callers share the same promise) and caches its result.
   * `null`/`undefined` results (not found) are not cached.
   */
  async cached<T>(key: string, opts: CacheEntryOptions<T>, loader: () => Promise<T>): Promise<T> {
    const hit = await this.get<T>(key);
    if (hit !== undefined) return hit;
    const pending = this.inflight.get(key);
    if (pending) return pending as Promise<T>;
    const load = (async () => {
      try {
        const value = await loader();
        if (value !== null && value !== undefined) {
          const tags = [...(opts.tags ?? []), ...(opts.tagsOf?.(value) ?? [])];
          await this.set(key, value, { ttl: opts.ttl, tags });
        }
        return value;
      } finally {
        this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, load);
    return load;
  }

  /** Masters of the cluster, as known to the client now (empty when Redis is unavailable). */
  masters(): ReturnType<Cluster['nodes']> {
    return this.available && this.redis ? this.redis.nodes('master') : [];
  }
}

/** Parses `INFO` output into a flat map. */
export function parseInfo(info: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of info.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}
