/**
 * Small value helpers every layer of tools/ (and stacks/) shares: a bounded
 * preview of a JSON value for messages, and the median of measurements.
 */

/** `value` as JSON, cut to `max` characters with an ellipsis; `missing` stands for undefined. */
export function preview(value: unknown, max = 80, missing = '(missing)'): string {
  if (value === undefined) return missing;
  const s = JSON.stringify(value) ?? missing;
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** The median: the middle value, or the mean of the two middle values of an even count. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
