/**
 * Metric names referenced by a PromQL expression, without a full parser:
 * strings, label matchers `{...}`, ranges `[...]` and grouping label lists
 * (`by (...)`, `on (...)`, ...) are removed first; what remains that is an
 * identifier, not a keyword and not followed by `(` (a function call) is a
 * metric name. Good for the expressions we write; `{__name__=...}` selectors
 * are refused so nothing slips through unseen.
 */

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'start', 'end']);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g;

export function metricNamesOf(expr: string): string[] {
  if (/__name__/.test(expr)) {
    throw new Error(`metricNamesOf: '${expr}' selects by __name__; write the metric name so it can be checked`);
  }
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^{}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(GROUPING, ' ')
    // group_left / group_right may stand without a label list.
    .replace(/\b(group_left|group_right)\b/g, ' ');
  const names = new Set<string>();
  const ident = /([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g;
  for (let m = ident.exec(stripped); m; m = ident.exec(stripped)) {
    const before = stripped[m.index - 1];
    // Skip the tail of numbers and durations (1e3, 5m) and function calls.
    if (before !== undefined && /[0-9.]/.test(before)) continue;
    if (m[2] || KEYWORDS.has(m[1].toLowerCase())) continue;
    names.add(m[1]);
  }
  return [...names].sort();
}
