/** The pure parts of `npm run bench:edge`: h2load's summary and bench/edge.md. */

/** What h2load prints at the end of a run. */
export interface H2loadSummary {
  readonly requests: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly status2xx: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  /** Bytes of response headers and of response bodies (DATA), as sent on the wire. */
  readonly headerBytes: number;
  readonly dataBytes: number;
  /** ALPN h2load negotiated ('h2' or 'http/1.1'). */
  readonly protocol: string;
}

/** Parses h2load's summary (nghttp2 1.52); throws naming the line it could not find. */
export function parseH2load(out: string): H2loadSummary {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out);
    if (!m) throw new Error(`h2load printed no ${what} line:\n${out}`);
    return m;
  };
  const r = need(
    /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/,
    'requests',
  );
  const s = need(/status codes: (\d+) 2xx/, 'status codes');
  const f = need(/finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/, 'finished');
  const t = need(/traffic: .*? \((\d+)\) total, .*? \((\d+)\) headers .*?, .*? \((\d+)\) data/, 'traffic');
  const p = need(/Application protocol: (\S+)/, 'Application protocol');
  return {
    requests: Number(r[1]),
    succeeded: Number(r[2]),
    failed: Number(r[3]),
    errored: Number(r[4]),
    timeout: Number(r[5]),
    status2xx: Number(s[1]),
    seconds: Number(f[1]) / (f[2] === 'ms' ? 1000 : 1),
    requestsPerSecond: Number(f[3]),
    headerBytes: Number(t[2]),
    dataBytes: Number(t[3]),
    protocol: p[1],
  };
}

/** One case of the edge benchmark, aggregated over its rounds. */
export interface EdgeCase {
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  /** Which body: `user` (below the gzip threshold) or `users` (a page of 20). */
  readonly body: string;
  /** Bytes of the body as the upstream sends it. */
  readonly bodyBytes: number;
  readonly acceptGzip: boolean;
  /** Median over the rounds. */
  readonly edgeMicrosPerRequest: number;
  /** The least over the rounds: the cost with the least interference from other tenants. */
  readonly minMicrosPerRequest: number;
  readonly rounds: readonly number[];
  readonly requestsPerSecond: number;
  /** Body bytes on the wire per response (after compression). */
  readonly wireBodyBytes: number;
  readonly wireHeaderBytes: number;
  readonly requests: number;
  /** Requests that did not end in a 2xx. */
  readonly failed: number;
}

export interface EdgeRun {
  readonly cases: readonly EdgeCase[];
  readonly nginxVersion: string;
  readonly h2loadVersion: string;
  readonly cores: number;
  readonly cpuModel: string;
  readonly requestsPerCase: number;
  readonly rounds: number;
  readonly h1Connections: number;
  readonly h2Connections: number;
  readonly h2Streams: number;
  readonly gzip: { readonly minLengthBytes: number; readonly level: number };
  readonly date: string;
}

/** Name of the generated section in README.md (`<!-- bench:edge:start -->` ... `:end -->`). */
export const EDGE_SECTION = 'bench:edge';

const f1 = (n: number) => n.toFixed(1);
const signed = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(1)}`;

/** The table (also the README's generated section). */
export function edgeTable(run: EdgeRun): string {
  const row = (protocol: string, body: string, acceptGzip: boolean) =>
    run.cases.find((b) => b.protocol === protocol && b.body === body && b.acceptGzip === acceptGzip);
  const diff = (c: EdgeCase, base: EdgeCase | undefined) =>
    base && base !== c ? signed(c.edgeMicrosPerRequest - base.edgeMicrosPerRequest) : '';
  const rows = run.cases.map((c) => [
    c.protocol,
    `${c.body} (${c.bodyBytes} B)`,
    c.acceptGzip ? 'gzip' : 'identity',
    `${f1(c.edgeMicrosPerRequest)} (${f1(c.minMicrosPerRequest)})`,
    c.protocol === 'HTTP/2' ? diff(c, row('HTTP/1.1', c.body, c.acceptGzip)) : '',
    c.acceptGzip ? diff(c, row(c.protocol, c.body, false)) : '',
    `${Math.round(c.wireBodyBytes)} B + ${Math.round(c.wireHeaderBytes)} B`,
    c.requestsPerSecond.toFixed(0),
    `${c.failed}/${c.requests}`,
  ]);
  const head = [
    'protocol',
    'response body',
    'client accepts',
    'edge CPU µs/request, median (least)',
    'HTTP/2 adds',
    'gzip adds',
    'on the wire (body + headers)',
    'req/s',
    'failed',
  ];
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** bench/edge.md. */
export function renderEdgeResults(run: EdgeRun): string {
  return [
    '# Edge benchmark: what HTTP/2 and gzip cost nginx',
    '',
    `Measured ${run.date} by \`npm run bench:edge\` on ${run.cores} cores (${run.cpuModel}), nginx ${run.nginxVersion}`,
    `(Debian 12) running the shipped prod nginx.conf (TLS, HTTP/2, gzip at level ${run.gzip.level} from`,
    `${run.gzip.minLengthBytes} bytes), h2load ${run.h2loadVersion} as the client. The conf is rendered with one`,
    'setting changed: `edge.rateLimit.allowlist: [127.0.0.0/8]`, because h2load has one source address and the',
    "per-client limit would answer most requests with 429 (so the limiter's own cost is not in these numbers).",
    '',
    `Each case: ${run.requestsPerCase} requests, ${run.rounds} rounds interleaved, median shown. HTTP/1.1:`,
    `${run.h1Connections} keep-alive connections; HTTP/2: ${run.h2Connections} connections x ${run.h2Streams}`,
    'concurrent streams (the same requests in flight; nginx ends a connection after 1000 requests,',
    'its default `keepalive_requests`). "edge CPU" is the user + system time of the nginx',
    'master and workers from /proc over the run, divided by the requests; it includes TLS, the access log',
    "and proxying to the upstream (a bare node:http server with the API's JSON shapes). The client and",
    'the upstream run on the same machine, so req/s is what this shared 2-core box gives, not a capacity.',
    '',
    edgeTable(run),
    '',
    'The machine is shared with other work, which inflates some rounds: the least of the rounds is the',
    'steadier figure. "HTTP/2 adds" and "gzip adds" compare medians.',
    '',
    '"HTTP/2 adds": the row against the HTTP/1.1 row with the same body and encoding; "gzip adds": the',
    'row against the identity row of the same protocol and body (negative: cheaper). Below the threshold',
    '(`user`) nginx does not compress, so accepting gzip should cost nothing there: what that column shows',
    "for `user` is this machine's noise. Rounds (µs/request) per case:",
    '',
    ...run.cases.map(
      (c) =>
        `- ${c.protocol}, ${c.body}, ${c.acceptGzip ? 'gzip' : 'identity'}: ${c.rounds.map((x) => f1(x)).join(', ')}`,
    ),
    '',
  ].join('\n');
}
