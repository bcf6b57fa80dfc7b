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
 *
 * Local tier (optional, `localTtlSeconds` > 0): a small in-process LRU of raw
 * values in front of Redis (local.ts). Every invalidation evicts the keys here
 * and announces them on INVALIDATION_CHANNEL; every pod subscribes and evicts
 * them too. The tier serves only while this pod's subscription is proven to
 * work (its pings, one a second, come back) and Redis is ready; otherwise it is
 * emptied and bypassed until a ping comes back again. Its TTL bounds staleness
 * should an announcement still be lost (in the instant a subscriber connection
 * drops, before the next ping notices).
 */
import type { Cluster, Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import { groupBySlot } from './key-slot';
import { withTimeout } from '../timeout';
import { deepFreeze, LocalCache } from './local';

export const KEY_PREFIX = 'fastnext:';
const TAG_PREFIX = `${KEY_PREFIX}tag:`;
/** Pub/sub channel on which pods announce the keys they invalidated (and prove their subscription with pings). */
export const INVALIDATION_CHANNEL = `${KEY_PREFIX}invalidations`;
/** Between subscription pings (each must come back before the next goes out). */
const PING_INTERVAL_MS = 1000;
/** Missed pings in a row after which the subscriber reconnects to another node. */
const SWITCH_AFTER_MISSED_PINGS = 3;
/** Events of the main cluster client on which the subscription is closed until it is ready again. */
const REDIS_DOWN_EVENTS = ['close', 'reconnecting', 'end'] as const;

type Announcement = { readonly keys: readonly string[] } | { readonly ping: string };

export interface CacheEntryOptions<T = unknown> {
  /** Seconds; jittered by +-jitter so keys written together do not expire together. */
  readonly ttl?: number;
  readonly tags?: readonly string[];
  /** More tags, from the loaded value (e.g. the owner of a row, known only once it is read). `cached` only. */
  readonly tagsOf?: (value: T) => readonly string[];
}

export interface CacheHooks {
  /** Any hit, local tier included. */
  onHit?(): void;
  /** A hit the local tier answered (also counted by onHit). */
  onLocalHit?(): void;
  onMiss?(): void;
  onError?(): void;
}

export interface CacheSettings {
  readonly defaultTtlSeconds: number;
  /** Fraction of the TTL added or removed at random. @default 0.1 */
  readonly jitter?: number;
  /** Budget of one cache round trip before we give up and use the database. @default 300 */
  readonly timeoutMs?: number;
  /** TTL of the in-process tier; 0 turns it off. @default 0 */
  readonly localTtlSeconds?: number;
  /** Entries of the in-process tier (least recently used go first). @default 10000 */
  readonly localMaxEntries?: number;
}

// Adds a member to a tag set and makes the set outlive its longest member (one slot: the tag key).
export const TAG_ADD = `redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

type TaggingCluster = Cluster & { fastnextTagAdd(tagKey: string, member: string, ttl: number): Promise<number> };

export class Cache {
  hits = 0;
  /** Hits the local tier answered (included in `hits`). */
  localHits = 0;
  misses = 0;
  errors = 0;
  readonly local: LocalCache;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly jitter: number;
  private readonly timeoutMs: number;
  /** A plain connection to one node: PUBLISH reaches every node of a cluster, so any node will do. */
  private subscriber: Redis | undefined;
  /** Pings in a row that did not come back; at SWITCH_AFTER_MISSED_PINGS the subscriber moves to another node. */
  private missedPings = 0;
  /** True while a ping published on INVALIDATION_CHANNEL has come back on the subscriber. */
  private listening = false;
  private pingNonce: string | undefined;
  private pingTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly redis: Cluster | undefined,
    private readonly settings: CacheSettings,
    private readonly log: FastifyBaseLogger,
    private readonly hooks: CacheHooks = {},
  ) {
    this.jitter = settings.jitter ?? 0.1;
    this.timeoutMs = settings.timeoutMs ?? 300;
    this.local = new LocalCache((settings.localTtlSeconds ?? 0) * 1000, settings.localMaxEntries ?? 10000);
    redis?.defineCommand('fastnextTagAdd', { numberOfKeys: 1, lua: TAG_ADD });
  }

  /** `host:port` of the node the invalidation subscriber is connected to (undefined without one). */
  get subscribedTo(): string | undefined {
    const o = this.subscriber?.options;
    return o ? `${o.host}:${o.port}` : undefined;
  }

  /** The local tier may answer: it is on, its invalidations are known to arrive, and Redis is ready. */
  get localServing(): boolean {
    return this.listening && this.available;
  }

  /**
   * Subscribes to other pods' invalidations, which turns the local tier on
   * (nothing to do when it is off). Returns at once; the subscription comes up
   * in the background once Redis is ready and is closed while Redis is down.
   * A ping published every PING_INTERVAL_MS must come back before the next
   * one, or the tier is emptied and off until one does; after
   * SWITCH_AFTER_MISSED_PINGS misses the subscriber moves to another node.
   */
  start(): void {
    const redis = this.redis;
    if (!this.local.enabled || !redis || this.pingTimer) return;
    redis.on('ready', this.openSubscriber);
    for (const event of REDIS_DOWN_EVENTS) redis.on(event, this.closeSubscriber);
    if (redis.status === 'ready') this.openSubscriber();
    this.pingTimer = setInterval(() => this.ping(), PING_INTERVAL_MS).unref();
  }

  /** Ends the subscription (the local tier stops serving). */
  async stop(): Promise<void> {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.redis?.off('ready', this.openSubscriber);
    for (const event of REDIS_DOWN_EVENTS) this.redis?.off(event, this.closeSubscriber);
    const sub = this.detachSubscriber('stopping');
    if (sub) await disconnectClient(sub);
  }

  private readonly openSubscriber = (): void => {
    if (this.subscriber || !this.redis) return;
    const nodes = this.redis.nodes('all');
    const ready = nodes.filter((n) => n.status === 'ready');
    const pool = ready.length > 0 ? ready : nodes;
    const node = pool[Math.floor(Math.random() * pool.length)];
    if (!node) return;
    // Not ioredis's cluster subscriber: that one retries a dead node without pause, and replaces
    // its connection without telling. This one backs off, and the pings tell when it is deaf.
    const sub = node.duplicate({
      connectionName: 'fastnext-invalidations',
      lazyConnect: true,
      readOnly: false,
      enableOfflineQueue: true,
      retryStrategy: (times: number) => Math.min(200 * times, 2000),
    });
    this.subscriber = sub;
    this.missedPings = 0;
    sub.on('message', (_channel: string, message: string) => this.onAnnouncement(message));
    for (const event of ['close', 'reconnecting', 'end'] as const) sub.on(event, () => this.lost(event));
    sub.on('error', (err: Error) => this.lost(err.message));
    sub.subscribe(INVALIDATION_CHANNEL).catch((err: Error) => this.lost(`subscribe failed: ${err.message}`));
  };

  private readonly closeSubscriber = (): void => this.detachSubscriber('redis down')?.disconnect();

  /** Forgets the subscriber (the tier goes off) and returns it for the caller to disconnect. */
  private detachSubscriber(why: string): Redis | undefined {
    const sub = this.subscriber;
    this.subscriber = undefined;
    this.lost(why);
    return sub;
  }

  private lost(why: string): void {
    if (this.listening) this.log.warn({ why }, 'cache: invalidation subscription lost; local tier off');
    this.listening = false;
    this.local.clear();
  }

  /** Publishes the next ping; the previous one must have come back by now. */
  private ping(): void {
    if (this.pingNonce !== undefined) {
      this.lost('ping not echoed in time');
      if (++this.missedPings >= SWITCH_AFTER_MISSED_PINGS && this.available) {
        // Its node may be gone for good (failed over, rescheduled): listen on another one.
        this.closeSubscriber();
        this.openSubscriber();
      }
    }
    const nonce = `${process.pid}-${Date.now()}-${Math.random()}`;
    this.pingNonce = nonce;
    this.redis?.publish(INVALIDATION_CHANNEL, JSON.stringify({ ping: nonce })).catch(() => undefined);
  }

  private onAnnouncement(message: string): void {
    let a: Announcement;
    try {
      a = JSON.parse(message) as Announcement;
    } catch {
      return; // not ours
    }
    if ('keys' in a && Array.isArray(a.keys)) {
      this.local.evict(a.keys);
    } else if ('ping' in a && a.ping === this.pingNonce && this.subscriber && this.pingTimer) {
      this.pingNonce = undefined;
      this.missedPings = 0;
      if (!this.listening) {
        // Whatever was missed before the ping went out is gone with this clear.
        this.local.clear();
        this.listening = true;
        this.log.info('cache: invalidation subscription up; local tier on');
      }
    }
  }

  /** Evicts `fullKeys` here and tells the other pods to evict them. */
  private async announce(r: Cluster, fullKeys: readonly string[]): Promise<void> {
    if (fullKeys.length === 0) return;
    this.local.evict(fullKeys);
    await r.publish(INVALIDATION_CHANNEL, JSON.stringify({ keys: fullKeys }));
  }

  /** Epoch milliseconds of the last failed or timed-out cache operation (0: none yet). */
  lastErrorAt = 0;

  /** Redis can serve reads: the client is ready and no operation failed in the last `windowMs`. */
  servingReads(windowMs = 5000): boolean {
    return this.available && Date.now() - this.lastErrorAt > windowMs;
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
    try {
      return await withTimeout(op(this.redis), this.timeoutMs, `cache ${what}`);
    } catch (err) {
      this.errors++;
      this.lastErrorAt = Date.now();
      this.hooks.onError?.();
      this.log.warn({ op: what, err: (err as Error).message }, 'cache unavailable; using the database');
      return undefined;
    }
  }

  async get<T>(key: string): Promise<T | undefined> {
    const full = KEY_PREFIX + key;
    const local = this.localServing;
    if (local) {
      const entry = this.local.get(full);
      if (entry !== undefined) {
        this.hits++;
        this.localHits++;
        this.hooks.onHit?.();
        this.hooks.onLocalHit?.();
        // Parsed once per entry and shared: frozen, so no reader can change what the next one gets.
        return (entry.value ??= deepFreeze(JSON.parse(entry.raw))) as T;
      }
    }
    const generation = this.local.generation;
    const raw = await this.guard('get', (r) => r.get(full));
    if (raw === undefined || raw === null) {
      this.misses++;
      this.hooks.onMiss?.();
      return undefined;
    }
    if (local) this.local.set(full, raw, generation);
    this.hits++;
    this.hooks.onHit?.();
    return JSON.parse(raw) as T;
  }

  async set(key: string, value: unknown, opts: CacheEntryOptions = {}): Promise<boolean> {
    return this.store(key, value, opts, this.local.generation);
  }

  /** `set`, keeping the value locally too unless an eviction happened since `generation` (when it was read). */
  private async store(key: string, value: unknown, opts: CacheEntryOptions, generation: number): Promise<boolean> {
    const full = KEY_PREFIX + key;
    const ttl = this.jitteredTtl(opts.ttl ?? this.settings.defaultTtlSeconds);
    const tags = opts.tags ?? [];
    // The longest TTL a member can get, so a tag set never expires before its members.
    const tagTtl = Math.ceil((opts.ttl ?? this.settings.defaultTtlSeconds) * (1 + this.jitter)) + 1;
    const raw = JSON.stringify(value);
    const ok = await this.guard('set', async (r) => {
      // Tags first: a key that exists is always reachable from its tags.
      await Promise.all(tags.map((t) => (r as TaggingCluster).fastnextTagAdd(TAG_PREFIX + t, full, tagTtl)));
      await r.set(full, raw, 'EX', ttl);
      return true;
    });
    if (ok === true && this.localServing) this.local.set(full, raw, generation);
    return ok === true;
  }

  /** Deletes every key carrying any of `tags`; returns how many keys were deleted. */
  async invalidateTags(tags: readonly string[]): Promise<number> {
    const deleted = await this.guard('invalidate', async (r) => {
      // One SMEMBERS per tag, all in flight at once (the tags may live on different masters).
      const members = new Set((await Promise.all(tags.map((t) => r.smembers(TAG_PREFIX + t)))).flat());
      // Evicted before the UNLINKs and again by announce() after them: a read on this pod in between
      // could have put a member back from Redis.
      this.local.evict(members);
      const counts = await Promise.all(groupBySlot([...members]).map((group) => r.unlink(...group)));
      await Promise.all(tags.map((t) => r.unlink(TAG_PREFIX + t)));
      await this.announce(r, [...members]);
      return counts.reduce((a, b) => a + b, 0);
    });
    // Redis unreachable: which keys the tags held is unknown here, so nothing local can be trusted.
    if (deleted === undefined) this.local.clear();
    return deleted ?? 0;
  }

  /** Deletes single keys (by their unprefixed names). */
  async del(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const full = keys.map((k) => KEY_PREFIX + k);
    this.local.evict(full); // and again in announce(), after the UNLINKs (see invalidateTags)
    const done = await this.guard('del', async (r) => {
      await Promise.all(groupBySlot(full).map((g) => r.unlink(...g)));
      await this.announce(r, full);
      return true;
    });
    if (done === undefined) this.local.clear();
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
        // Read before the loader runs: an invalidation during the load keeps its result out of the local tier.
        const generation = this.local.generation;
        const value = await loader();
        if (value !== null && value !== undefined) {
          const tags = [...(opts.tags ?? []), ...(opts.tagsOf?.(value) ?? [])];
          await this.store(key, value, { ttl: opts.ttl, tags }, generation);
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

/** Disconnects a client and waits (up to 2 s) for its connections to end, so no timer is left behind. */
export async function disconnectClient(client: Cluster | Redis): Promise<void> {
  if (client.status === 'end') return;
  const ended = new Promise<void>((resolve) => {
    client.once('end', () => resolve());
    setTimeout(resolve, 2000).unref();
  });
  const open = hasConnections(client);
  client.disconnect();
  // A client waiting to reconnect (Redis unreachable) has no connection to end, and ioredis emits
  // no 'end' for it: disconnect() cancelled its reconnect timer, so nothing is left to wait for.
  // (Waiting anyway held every shutdown with Redis down for the whole 2 s.)
  if (open) await ended;
}

function hasConnections(client: Cluster | Redis): boolean {
  if (client.isCluster) return (client as Cluster).nodes('all').length > 0;
  return client.status === 'connect' || client.status === 'connecting' || client.status === 'ready';
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
