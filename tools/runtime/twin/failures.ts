/**
 * Where a drill's failed requests came from, from the logs a cluster would have: the
 * edge's JSON access log (the drill's client address, status >= 500: which upstream
 * answered, or none) joined on nginx's `$request_id` with the API pods' logs (the
 * service logs every 5xx as 'request failed' with its error, under that id), plus the
 * requests that got no answer at all. A drill prints this with its numbers, so a
 * failure explains itself in the run that saw it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Outcome } from './traffic';

/** What the explanation reads: the edge's log, and the directory of the pods' `<name>.log` files. */
export interface FailureSources {
  readonly edgeLogPath: string;
  readonly podLogDir: string;
}

interface EdgeLine {
  readonly remote_addr?: string;
  readonly request_id?: string;
  readonly method?: string;
  readonly uri?: string;
  readonly status?: number;
  readonly upstream?: string;
  readonly upstream_time?: string;
}

interface PodLine {
  readonly reqId?: string;
  readonly msg?: string;
  readonly err?: { readonly message?: string };
}

/** Every pod that ever ran (restarts and rolled-away pods included): its log, and where it listened. */
function podLogs(dir: string): { name: string; lines: PodLine[]; upstreams: string[] }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => {
      const lines = jsonLines<PodLine>(readFileSync(join(dir, f), 'utf8'));
      const upstreams = lines.flatMap(
        (l) => /^Server listening at http:\/\/([\d.]+:\d+)$/.exec(l.msg ?? '')?.[1] ?? [],
      );
      return { name: f.slice(0, -'.log'.length), lines, upstreams };
    });
}

const jsonLines = <T>(text: string): T[] =>
  text.split('\n').flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as T];
    } catch {
      return [];
    }
  });

const count = (keys: string[]) => {
  const n = new Map<string, number>();
  for (const k of keys) n.set(k, (n.get(k) ?? 0) + 1);
  return [...n.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} x ${k}`);
};

/**
 * One line per kind of failure: `N x <status> <method> via <pod> (<pod's logged error>)` for
 * answers the edge logged with status >= 500, `N x no answer (<client error>)` for the rest.
 */
export function explainFailures(failed: readonly Outcome[], clientAddress: string, src: FailureSources): string[] {
  if (failed.length === 0) return [];
  const edge = jsonLines<EdgeLine>(readFileSync(src.edgeLogPath, 'utf8')).filter(
    (l) => l.remote_addr === clientAddress && (l.status ?? 0) >= 500,
  );
  const podErrors = new Map<string, string>();
  const podsByUpstream = new Map<string, string>();
  for (const pod of podLogs(src.podLogDir)) {
    for (const u of pod.upstreams) podsByUpstream.set(u, pod.name);
    for (const l of pod.lines) if (l.reqId && l.msg === 'request failed') podErrors.set(l.reqId, l.err?.message ?? '?');
  }
  const answered = edge.map((l) => {
    // nginx lists every upstream it tried ("a, b"); the last one answered.
    const last = (l.upstream ?? '').split(/,\s*/).pop() ?? '';
    const via = last ? (podsByUpstream.get(last) ?? last) : 'no upstream';
    const why = podErrors.get(l.request_id ?? '') ?? (last ? 'not in the pod log' : 'the edge itself');
    return `${l.status} ${l.method} via ${via} (${why})`;
  });
  const unanswered = failed.filter((f) => f.status === 0).map((f) => `no answer (${f.error ?? '?'})`);
  return count([...answered, ...unanswered]);
}
