/** The in-process cache tier: TTL, LRU bound, and the generation guard against racing invalidations. */
import { LocalCache } from '../../src/cache/local';

let now = 0;
const cache = (ttlMs = 1000, max = 3) => new LocalCache(ttlMs, max, () => now);

beforeEach(() => {
  now = 1_000_000;
});

test('answers a stored value until its TTL, then forgets it', () => {
  const c = cache();
  expect(c.set('a', '"A"', c.generation)).toBe(true);
  now += 999;
  expect(c.get('a')).toBe('"A"');
  now += 1;
  expect(c.get('a')).toBeUndefined();
  expect(c.size).toBe(0);
});

test('drops the least recently used entry when full', () => {
  const c = cache();
  for (const k of ['a', 'b', 'c']) c.set(k, k, c.generation);
  expect(c.get('a')).toBe('a'); // a is now the most recently used
  c.set('d', 'd', c.generation);
  expect(c.size).toBe(3);
  expect(c.get('b')).toBeUndefined();
  expect(['a', 'c', 'd'].map((k) => c.get(k))).toEqual(['a', 'c', 'd']);
});

test('does not store a value read before an eviction (it may predate the invalidation)', () => {
  const c = cache();
  const readStartedAt = c.generation;
  c.evict(['x']); // an invalidation arrives while the read is in flight
  expect(c.set('k', 'old', readStartedAt)).toBe(false);
  expect(c.get('k')).toBeUndefined();
  expect(c.set('k', 'new', c.generation)).toBe(true);
});

test('evict and clear remove entries', () => {
  const c = cache();
  c.set('a', 'a', c.generation);
  c.set('b', 'b', c.generation);
  c.evict(['a', 'missing']);
  expect([c.get('a'), c.get('b')]).toEqual([undefined, 'b']);
  c.clear();
  expect(c.size).toBe(0);
});

test('a TTL of 0 turns the tier off', () => {
  const c = cache(0);
  expect(c.enabled).toBe(false);
  expect(c.set('a', 'a', c.generation)).toBe(false);
  expect(c.get('a')).toBeUndefined();
});
