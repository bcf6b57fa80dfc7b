/** Loopback backends, clients and certificates for the tests that run the edge's nginx.conf. */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as path from 'path';
import type { Endpoint } from '../../tools/runtime/nginx-runner';

export interface Backend {
  host: string;
  port: number;
  id: string;
  hits: number;
  /** Headers of the last request it got. */
  lastHeaders: http.IncomingHttpHeaders;
  /** Requests to `/hold` waiting for release(). */
  holding(): number;
  release(): void;
  close(): Promise<void>;
}

/** A JSON body of about 3 KB: above the edge's gzip threshold. */
export const BIG_JSON = JSON.stringify({
  items: Array.from({ length: 40 }, (_, i) => ({ id: i, username: `user-${i}`, email: `user-${i}@example.test` })),
});

/**
 * A loopback HTTP backend: answers `{"backend": id}`; `/hold` waits until released;
 * `/big` answers BIG_JSON (with a Content-Length, as the API does).
 */
export function backend(id: string): Promise<Backend> {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    b.hits++;
    b.lastHeaders = req.headers;
    const reply = () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ backend: id }));
    };
    req.resume();
    if (req.url === '/hold') held.push(res);
    else if (req.url === '/big') {
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.setHeader('content-length', Buffer.byteLength(BIG_JSON));
      res.end(BIG_JSON);
    } else reply();
  });
  server.keepAliveTimeout = 65000;
  const b: Backend = {
    id,
    host: '127.0.0.1',
    port: 0,
    hits: 0,
    lastHeaders: {},
    holding: () => held.length,
    release: () => {
      for (const res of held.splice(0)) res.end(JSON.stringify({ backend: id }));
    },
    close: () =>
      new Promise((resolve) => {
        b.release();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      b.port = (server.address() as { port: number }).port;
      resolve(b);
    }),
  );
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  /** Bytes of the body as sent (before any decoding). */
  bytes: number;
}

export interface RequestOptions {
  tls?: boolean;
  agent?: http.Agent | false;
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  /** Source address (127.x.y.z): a client of its own for the rate limit. */
  localAddress?: string;
}

/** One HTTP/1.1 request; the body is returned as received (not decompressed). */
export function request(ep: Endpoint, urlPath: string, opts: RequestOptions = {}): Promise<Reply> {
  const mod = opts.tls ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        host: ep.host,
        port: ep.port,
        path: urlPath,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent,
        localAddress: opts.localAddress,
        rejectUnauthorized: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            body: body.toString('utf8'),
            headers: res.headers,
            bytes: body.length,
          });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Sends raw bytes (requests node's client refuses to make) and parses the one response. */
export function rawRequest(
  ep: Endpoint,
  bytes: string | Buffer,
  localAddress?: string,
): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    // write, not end: nginx takes a half-closed client for one that went away (499).
    const socket = net.connect({ port: ep.port, host: ep.host, localAddress }, () => socket.write(bytes));
    let data = '';
    const complete = () => {
      const [head, ...rest] = data.split('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(head)?.[1];
      return rest.length > 0 && length !== undefined && Buffer.byteLength(rest.join('\r\n\r\n')) >= +length;
    };
    socket.on('data', (d) => {
      data += d;
      // Done once the whole response is in: no waiting out nginx's lingering close.
      if (complete()) socket.destroy();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, ...rest] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), headers: head.toLowerCase(), body: rest.join('\r\n\r\n') });
    });
  });
}

/** A self-signed certificate and key for `cn` (P-256: fast to make and to handshake). */
export function selfSigned(dir: string, cn: string): { cert: string; key: string } {
  const key = path.join(dir, `${cn}.key`);
  const crt = path.join(dir, `${cn}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      key,
      '-out',
      crt,
    ],
    { stdio: 'ignore' },
  );
  return { cert: fs.readFileSync(crt, 'utf8'), key: fs.readFileSync(key, 'utf8') };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
