/**
 * A small line diff for multi-line values (nginx.conf, scripts and rules in
 * ConfigMaps): unified hunks with one line of context, so a reviewer sees the
 * three lines that changed rather than two 200-line strings.
 */

type Op = { op: ' ' | '-' | '+'; line: string; a: number; b: number };

/** Edit script by longest common subsequence (files here are a few hundred lines: O(n·m) is fine). */
function editScript(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) ops.push({ op: ' ', line: a[i], a: i++, b: j++ });
    // Deletions before insertions, as unified diffs print them.
    else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) ops.push({ op: '-', line: a[i], a: i++, b: j });
    else ops.push({ op: '+', line: b[j], a: i, b: j++ });
  }
  return ops;
}

/** Unified-diff hunks (`@@ -a,n +b,m @@` then ` `/`-`/`+` lines) between two texts. */
export function lineDiff(before: string, after: string, context = 1): string[] {
  const ops = editScript(before.split('\n'), after.split('\n'));
  const keep = ops.map((_, k) => ops.slice(Math.max(0, k - context), k + context + 1).some((o) => o.op !== ' '));
  const out: string[] = [];
  for (let k = 0; k < ops.length;) {
    if (!keep[k]) {
      k++;
      continue;
    }
    let end = k;
    while (end < ops.length && keep[end]) end++;
    const hunk = ops.slice(k, end);
    const aLines = hunk.filter((o) => o.op !== '+').length;
    const bLines = hunk.filter((o) => o.op !== '-').length;
    out.push(`@@ -${hunk[0].a + 1},${aLines} +${hunk[0].b + 1},${bLines} @@`);
    for (const o of hunk) out.push(`${o.op}${o.line}`);
    k = end;
  }
  return out;
}
