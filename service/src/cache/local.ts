/**
 * The in-process tier of the cache (a "near cache"): the raw JSON of recently
 * read keys (and, once read, the parsed value, frozen and shared by every reader, so a hit
 * does not parse it again), in front of Redis, so a hot key does not cost a Redis round trip
 * per request, nor load the one master that owns its slot.
 *
 * It is only as fresh as its invalidations: the Cache evicts keys here when it
 * invalidates them itself and when another pod announces them (Redis pub/sub).
 * Entries expire after a short TTL, which bounds staleness when an announcement
 * is lost (the subscriber connection dropping during a failover).
 *
 * `generation` counts evictions: a value read from Redis or the database is
 * stored only if no eviction happened since the read began, so a reply that
 * raced an invalidation is never cached here.
 */
/** A live entry: the raw JSON, and its parsed value once a reader asked for it (shared, frozen). */
export interface LocalEntry {
  readonly raw: string;
  readonly expires: number;
  /** Position in the recency order (LocalCache.seq when last stored or moved to the back). */
  seq: number;
  value?: unknown;
}

export class LocalCache {
  private readonly entries = new Map<string, LocalEntry>();
  generation = 0;
  /** Counts stores and moves to the back of the recency order. */
  private seq = 0;

  constructor(
    /** 0 disables the tier. */
    readonly ttlMs: number,
    readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0 && this.maxEntries > 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * A live entry. Recency is kept approximately (as Redis's own LRU is): an entry is moved to the
   * back of the eviction order only when more than half the capacity was stored or moved since it
   * was, so a hot key costs a Map lookup, not a delete and an insert, on every read.
   */
  get(key: string): LocalEntry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    if (this.seq - e.seq > this.maxEntries >> 1) {
      this.entries.delete(key);
      this.entries.set(key, e);
      e.seq = ++this.seq;
    }
    return e;
  }

  /**
   * Stores `raw` unless an eviction happened since `generation` was read (the
   * value may predate it); drops the least recently used entry when full.
   */
  set(key: string, raw: string, generation: number): boolean {
    if (!this.enabled || generation !== this.generation) return false;
    this.entries.delete(key);
    this.entries.set(key, { raw, expires: this.now() + this.ttlMs, seq: ++this.seq });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return true;
  }

  evict(keys: Iterable<string>): void {
    this.generation++;
    for (const k of keys) this.entries.delete(k);
  }

  clear(): void {
    this.generation++;
    this.entries.clear();
  }
}

/** Freezes a parsed JSON value and everything in it (a value the local tier hands to every reader). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
