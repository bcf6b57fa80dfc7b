/**
 * Zipf(s) sampler over ranks 0..n-1 (rank 0 the hottest): P(k) ∝ 1/(k+1)^s.
 * Inverse CDF by binary search over the precomputed cumulative weights.
 */
export function zipfSampler(n: number, s = 1, random: () => number = Math.random): () => number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`'n' (${n}) must be a positive integer`);
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, s);
    cdf[k] = total;
  }
  return () => {
    const u = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** A seeded PRNG (mulberry32), so bench runs draw the same key sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
