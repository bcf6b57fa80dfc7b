/** The in-process cache tier: TTL, (approximate) LRU bound, and the generation guard against racing invalidations. */
import { deepFreeze, LocalCache } from '../../src/cache/local';

let now = 0;
const cache = (ttlMs = 1000, max = 3) => new LocalCache(ttlMs, max, () => now);

beforeEach(() => {
  now = 1_000_000;
});

test('answers a stored value until its TTL, then forgets it', () => {
  const c = cache();
  expect(c.set('a', '"A"', c.generation)).toBe(true);
  now += 999;
  expect(c.get('a')?.raw).toBe('"A"');
  now += 1;
  expect(c.get('a')?.raw).toBeUndefined();
  expect(c.size).toBe(0);
});

test('drops the least recently used entry when full', () => {
  const c = cache();
  for (const k of ['a', 'b', 'c']) c.set(k, k, c.generation);
  expect(c.get('a')?.raw).toBe('a'); // a is now the most recently used
  c.set('d', 'd', c.generation);
  expect(c.size).toBe(3);
  expect(c.get('b')?.raw).toBeUndefined();
  expect(['a', 'c', 'd'].map((k) => c.get(k)?.raw)).toEqual(['a', 'c', 'd']);
});

test('does not store a value read before an eviction (it may predate the invalidation)', () => {
  const c = cache();
  const readStartedAt = c.generation;
  c.evict(['x']); // an invalidation arrives while the read is in flight
  expect(c.set('k', 'old', readStartedAt)).toBe(false);
  expect(c.get('k')?.raw).toBeUndefined();
  expect(c.set('k', 'new', c.generation)).toBe(true);
});

test('evict and clear remove entries', () => {
  const c = cache();
  c.set('a', 'a', c.generation);
  c.set('b', 'b', c.generation);
  c.evict(['a', 'missing']);
  expect([c.get('a')?.raw, c.get('b')?.raw]).toEqual([undefined, 'b']);
  c.clear();
  expect(c.size).toBe(0);
});

test('a TTL of 0 turns the tier off', () => {
  const c = cache(0);
  expect(c.enabled).toBe(false);
  expect(c.set('a', 'a', c.generation)).toBe(false);
  expect(c.get('a')?.raw).toBeUndefined();
});

test('moves a read entry to the back only once half the capacity was stored since', () => {
  const c = cache(1000, 4);
  for (const k of ['a', 'b', 'c']) c.set(k, k, c.generation);
  c.get('a'); // stored 2 entries ago: within half of 4, so it keeps its place (the oldest)
  c.set('d', 'd', c.generation);
  c.set('e', 'e', c.generation); // full: a, the oldest, goes
  expect(c.get('a')).toBeUndefined();
  c.get('b'); // stored 4 entries ago: moved to the back
  c.set('f', 'f', c.generation); // c goes, not b
  expect(['b', 'c', 'd', 'e', 'f'].map((k) => c.get(k)?.raw)).toEqual(['b', undefined, 'd', 'e', 'f']);
});

test('deepFreeze freezes nested objects and arrays', () => {
  const v = deepFreeze({ items: [{ settings: { a: 1 } }] });
  expect(Object.isFrozen(v) && Object.isFrozen(v.items) && Object.isFrozen(v.items[0].settings)).toBe(true);
  expect(() => {
    'use strict';
    (v.items[0].settings as { a: number }).a = 2;
  }).toThrow(TypeError);
});
