/**
 * The in-process tier of the cache (a "near cache"): the raw JSON of recently
 * read keys, in front of Redis, so a hot key does not cost a Redis round trip
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
export class LocalCache {
  private readonly entries = new Map<string, { readonly raw: string; readonly expires: number }>();
  generation = 0;

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

  /** The raw value of a live entry; refreshes its place in the LRU order. */
  get(key: string): string | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    if (e.expires <= this.now()) return undefined;
    this.entries.set(key, e);
    return e.raw;
  }

  /**
   * Stores `raw` unless an eviction happened since `generation` was read (the
   * value may predate it); drops the least recently used entry when full.
   */
  set(key: string, raw: string, generation: number): boolean {
    if (!this.enabled || generation !== this.generation) return false;
    this.entries.delete(key);
    this.entries.set(key, { raw, expires: this.now() + this.ttlMs });
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
