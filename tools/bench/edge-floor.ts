/**
 * `npm run bench:edge-floor -- [--rounds 6] [--seconds 5] [--rate 3000]`: the edge's CPU per request with
 * the shipped dev nginx.conf against two floors on the same nginx, so the edge target (<= 30 µs) can be
 * read against what proxying costs at all on this machine:
 *
 * - no upstream: nginx answers the body itself (`return 200`), which is what the client side of a
 *   request costs nginx here;
 * - bare proxy: the same worker count and upstream keepalive as shipped, and nothing else (no limit, no
 *   log, no headers added);
 * - shipped: the dev edge's nginx.conf as synthesized (rate limit, request id, buffered JSON access
 *   log, security headers, 128 idle upstream connections).
 *
 * Upstream: tools/bench/json-server.ts (a bare node:http server, one user's JSON). Load: autocannon,
 * 100 connections, each from its own source address (so the shipped limit of 100 r/s per client is in
 * force and never reached), at a fixed rate, rounds rotating the order. The measure is the CPU of every
 * nginx process (master and workers) from /proc.
 */
import type autocannon from 'autocannon';
import { EDGE_PORTS } from '../../constructs/edge/nginx-conf';
import { loadEnvironment } from '../../stacks/environments';
import { synthObjects } from '../../stacks/synth';
import { type RunningNginx, shippedNginxConf, startNginx } from '../runtime/nginx-runner';
import { type Rung, runLadder } from './floor';
import { startBenchServer } from './http';
import { BODIES } from './json-server';
import { intOption } from './report';

/**
 * A floor conf with the shipped conf's worker count and upstream keepalive: a bare proxy, or (`answer`)
 * nginx answering `answer` itself. The upstream line has the shape the runner points at loopback.
 */
export function floorEdgeConf(shipped: string, answer?: string): string {
  const workers = /^worker_processes (\S+);$/m.exec(shipped)?.[1];
  const keepalive = /^\s*keepalive (\d+);$/m.exec(shipped)?.[1];
  if (!workers || !keepalive) throw new Error('the shipped nginx.conf has no worker_processes or upstream keepalive');
  const location = answer
    ? ['            default_type application/json;', `            return 200 '${answer}';`]
    : [
        '            proxy_pass http://api;',
        '            proxy_http_version 1.1;',
        '            proxy_set_header Connection "";',
      ];
  return [
    `worker_processes ${workers};`,
    'pid /tmp/nginx/nginx.pid;',
    'error_log /dev/stderr warn;',
    'events { worker_connections 4096; }',
    'http {',
    '    access_log off;',
    '    resolver 127.0.0.1 valid=10s ipv6=off;',
    '    upstream api {',
    '        zone api_upstream 256k;',
    '        server api:3000 resolve max_fails=3 fail_timeout=30s;',
    `        keepalive ${keepalive};`,
    '        keepalive_requests 1000;',
    '    }',
    '    server {',
    `        listen ${EDGE_PORTS.http};`,
    '        location / {',
    ...location,
    '        }',
    '    }',
    '    server {',
    `        listen ${EDGE_PORTS.status};`,
    '        location = /healthz { return 200; }',
    '    }',
    '}',
    '',
  ].join('\n');
}

export async function main(argv: readonly string[] = []): Promise<number> {
  const rounds = intOption(argv, '--rounds', 6);
  const seconds = intOption(argv, '--seconds', 5);
  const rate = intOption(argv, '--rate', 3000);
  const upstream = await startBenchServer('json-server.ts');
  const port = Number(new URL(upstream.url).port);
  const shipped = shippedNginxConf(synthObjects(loadEnvironment('dev')));
  const variants: [string, string][] = [
    ['no upstream (nginx answers)', floorEdgeConf(shipped, BODIES['/user'])],
    ['bare proxy (keepalive only)', floorEdgeConf(shipped)],
    ['shipped dev nginx.conf', shipped],
  ];
  const edges: RunningNginx[] = [];
  try {
    for (const [, conf] of variants) {
      edges.push(await startNginx({ nginxConf: conf, upstreams: [{ host: '127.0.0.1', port }] }));
    }
    const request = (): autocannon.Request => ({ method: 'GET', path: '/user' });
    const rungs: Rung[] = variants.map(([label], i) => ({
      target: { label, url: `http://${edges[i].http.host}:${edges[i].http.port}`, pods: [], spread: true },
      request,
      // The master and its workers.
      pids: [edges[i].pid],
    }));
    const run = { rounds, seconds, rate, warmUp: 2 * rate };
    console.log(`\n${await runLadder('edge-floor', rungs, run, 'no upstream')}`);
    return 0;
  } finally {
    for (const e of edges) await e.stop();
    upstream.stop();
  }
}
