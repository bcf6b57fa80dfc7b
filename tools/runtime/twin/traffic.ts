/**
 * A bounded request loop for the fault drills: at most `maxRequests` requests,
 * for at most `maxMs`, paced at `ratePerSecond` (the edge limits each client IP
 * to 100 r/s), from one loopback source address, each on a fresh connection (a
 * keep-alive connection nginx closes on reload would otherwise race the next
 * request and count as a failure that no real client would see twice).
 */
import * as http from 'node:http';

export interface TrafficRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
}

export interface TrafficOptions {
  /** e.g. http://127.0.0.1:PORT */
  readonly base: string;
  readonly request: (i: number) => TrafficRequest;
  /** Requests in flight at most (one per worker). @default 4 */
  readonly concurrency?: number;
  /** @default 40 */
  readonly ratePerSecond?: number;
  readonly maxRequests: number;
  readonly maxMs: number;
  /** Source address (127.x.y.z) so each drill is its own client for the rate limit. @default the kernel's choice */
  readonly localAddress?: string;
  /** Per-request timeout. @default 10000 */
  readonly timeoutMs?: number;
}

export interface Outcome {
  readonly i: number;
  readonly method: string;
  readonly path: string;
  /** Milliseconds since the loop started. */
  readonly at: number;
  readonly ms: number;
  /** HTTP status, or 0 when no response arrived. */
  readonly status: number;
  readonly body: string;
  readonly error?: string;
}

export interface TrafficResult {
  readonly sent: number;
  readonly ok: number;
  /** Requests with no 2xx/3xx/4xx answer (5xx or no response). 4xx are counted by status. */
  readonly failed: Outcome[];
  readonly byStatus: Record<string, number>;
  readonly outcomes: Outcome[];
  readonly durationMs: number;
}

export interface RunningTraffic {
  /** Milliseconds since the loop started. */
  now(): number;
  /** The outcomes so far (a live view while the loop runs). */
  outcomes(): readonly Outcome[];
  /** Stops issuing requests; resolves when the in-flight ones are done. */
  stop(): Promise<TrafficResult>;
  readonly done: Promise<TrafficResult>;
}

function send(base: string, r: TrafficRequest, localAddress: string | undefined, timeoutMs: number) {
  return new Promise<{ status: number; body: string; error?: string }>((resolve) => {
    const payload = r.body === undefined ? undefined : JSON.stringify(r.body);
    const req = http.request(
      base + r.path,
      {
        method: r.method,
        agent: false,
        localAddress,
        timeout: timeoutMs,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (e) => resolve({ status: 0, body, error: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
    req.end(payload);
  });
}

export const isFailure = (o: Outcome) => o.status === 0 || o.status >= 500;

export function startTraffic(opts: TrafficOptions): RunningTraffic {
  const concurrency = opts.concurrency ?? 4;
  const rate = opts.ratePerSecond ?? 40;
  const timeoutMs = opts.timeoutMs ?? 10000;
  const t0 = Date.now();
  const now = () => Date.now() - t0;
  const outcomes: Outcome[] = [];
  let next = 0;
  let nextSlot = 0;
  let stopped = false;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (stopped || i >= opts.maxRequests || now() >= opts.maxMs) return;
      // Slots never bunch up: after a slow phase (a failover) the loop resumes at the
      // paced rate instead of catching up in a burst the edge would answer with 429.
      const slot = Math.max(nextSlot, now());
      nextSlot = slot + 1000 / rate;
      const due = slot - now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      if (stopped || now() >= opts.maxMs) return;
      const r = opts.request(i);
      const at = now();
      const res = await send(opts.base, r, opts.localAddress, timeoutMs);
      outcomes.push({ i, method: r.method, path: r.path, at, ms: now() - at, ...res });
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker)).then((): TrafficResult => {
    const byStatus: Record<string, number> = {};
    for (const o of outcomes)
      byStatus[o.status || o.error || 'none'] = (byStatus[o.status || o.error || 'none'] ?? 0) + 1;
    const failed = outcomes.filter(isFailure);
    return {
      sent: outcomes.length,
      ok: outcomes.filter((o) => o.status >= 200 && o.status < 400).length,
      failed,
      byStatus,
      outcomes: outcomes.sort((a, b) => a.i - b.i),
      durationMs: now(),
    };
  });
  return {
    now,
    done,
    outcomes: () => outcomes,
    stop: () => {
      stopped = true;
      return done;
    },
  };
}

/** One line for the drill report. */
export function summarize(name: string, r: TrafficResult, checked: string): string {
  const statuses = Object.entries(r.byStatus)
    .map(([s, n]) => `${s}x${n}`)
    .join(' ');
  return `[drill] ${name}: sent ${r.sent}, failed ${r.failed.length} (statuses ${statuses}) in ${(r.durationMs / 1000).toFixed(1)} s; data checked: ${checked}`;
}
