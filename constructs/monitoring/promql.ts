/**
 * Scoping PromQL to one namespace, for a Prometheus the platform shares with others (operator
 * mode): every vector selector gets a `namespace="<ns>"` matcher, so a rule or panel sees only
 * this environment's series. `sum(rate(x[5m]))` in a private Prometheus means "this
 * environment"; in kube-prometheus-stack's it would mean "every namespace".
 *
 * A small scanner, not a parser: it copies strings, `{...}` matchers and `[...]` ranges,
 * grouping label lists (`by (...)`, `on (...)`, ...), function and aggregation names, keywords,
 * numbers and durations through unchanged, and treats every other identifier as a metric name.
 * That covers the expressions we write; test/monitoring-scope.test.ts checks every shipped
 * expression keeps its metric names and a real Prometheus accepts the scoped form.
 */

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Aggregations may put `by (...)` / `without (...)` between their name and `(`. */
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
const IDENT_START = /[a-zA-Z_:]/;
const IDENT = /[a-zA-Z0-9_:]/;

/** The index just past the bracket that closes the one at `open` (`(`, `[` or `{`), skipping strings. */
function closing(expr: string, open: number): number {
  const pairs: Record<string, string> = { '(': ')', '[': ']', '{': '}' };
  const want = [pairs[expr[open]]];
  let i = open + 1;
  while (i < expr.length && want.length) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      i = stringEnd(expr, i);
      continue;
    }
    if (c in pairs) want.push(pairs[c]);
    else if (c === want[want.length - 1]) want.pop();
    i++;
  }
  if (want.length) throw new Error(`unbalanced '${expr[open]}' at ${open} in: ${expr}`);
  return i;
}

function stringEnd(expr: string, start: number): number {
  const quote = expr[start];
  let i = start + 1;
  while (i < expr.length && expr[i] !== quote) i += expr[i] === '\\' && quote !== '`' ? 2 : 1;
  if (i >= expr.length) throw new Error(`unterminated string at ${start} in: ${expr}`);
  return i + 1;
}

const skipSpace = (expr: string, i: number) => {
  while (i < expr.length && /\s/.test(expr[i])) i++;
  return i;
};

/**
 * `expr` with `label="value"` added to every vector selector. Throws when a selector already
 * matches on `label` (two matchers on one label would silently select nothing or everything).
 */
export function withLabelMatcher(expr: string, label: string, value: string): string {
  const matcher = `${label}=${JSON.stringify(value)}`;
  let out = '';
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      const end = stringEnd(expr, i);
      out += expr.slice(i, end);
      i = end;
    } else if (c === '[') {
      const end = closing(expr, i);
      out += expr.slice(i, end);
      i = end;
    } else if (c === '{') {
      throw new Error(`a selector without a metric name at ${i} in: ${expr}`);
    } else if (/[0-9.]/.test(c)) {
      // A number or a duration (`0.95`, `1e3`, `5m`): never a metric name.
      let end = i + 1;
      while (end < expr.length && /[0-9a-zA-Z._]/.test(expr[end])) end++;
      out += expr.slice(i, end);
      i = end;
    } else if (IDENT_START.test(c)) {
      let end = i + 1;
      while (end < expr.length && IDENT.test(expr[end])) end++;
      const word = expr.slice(i, end);
      const next = skipSpace(expr, end);
      const lower = word.toLowerCase();
      if (GROUPING.has(lower)) {
        // `by (a, b)`: labels, not metrics. group_left / group_right may stand without a list.
        const listEnd = expr[next] === '(' ? closing(expr, next) : end;
        out += expr.slice(i, listEnd);
        i = listEnd;
      } else if (KEYWORDS.has(lower) || expr[next] === '(' || AGGREGATIONS.has(lower)) {
        // A function or aggregation name (or an aggregation followed by `by`/`without`), or a keyword.
        out += word;
        i = end;
      } else if (expr[next] === '{') {
        const braceEnd = closing(expr, next);
        const inside = expr.slice(next + 1, braceEnd - 1);
        if (new RegExp(`(^|,)\\s*${label}\\s*(=|!=|=~|!~)`).test(inside)) {
          throw new Error(`'${word}' already matches on '${label}' in: ${expr}`);
        }
        out += `${word}{${matcher}${inside.trim() ? `,${inside}` : ''}}`;
        i = braceEnd;
      } else {
        out += `${word}{${matcher}}`;
        i = end;
      }
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
