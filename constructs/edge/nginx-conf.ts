/**
 * nginx.conf of the edge tier, rendered from the typed config. The same bytes
 * go into the edge ConfigMap and into the tests that run Debian's nginx.
 *
 * Rendered for the shipped image (nginx >= 1.27.3): `resolve` on the upstream
 * server and `http2 on;`. Debian 12's nginx 1.22, which the tests run, takes
 * neither; tools/runtime/nginx-runner.ts rewrites exactly those lines for it.
 */
import { REQUEST_ID_HEADER, SERVICE_LIMITS } from '../../service/src/contract';
import { parseQuantity } from '../core/quantity';
import { indent, renderEdgeErrors } from './edge-errors';
import { type RateLimit, renderLocations, renderRateLimits } from './rate-limit';

/** Ports of the edge pods. */
export const EDGE_PORTS = {
  /** Plain HTTP (redirects to HTTPS when TLS is on). */
  http: 8080,
  /** HTTPS, when `edge.tls` is set. */
  https: 8443,
  /** Internal: /healthz for probes and /stub_status for the exporter. Never exposed by the Service. */
  status: 8081,
  /** nginx-prometheus-exporter. */
  metrics: 9113,
} as const;

/**
 * Filesystem paths nginx.conf refers to. Tests substitute these (and only
 * these, plus upstream and resolver addresses) to run the shipped file.
 */
export const EDGE_PATHS = {
  /** Writable scratch (pid, temp files): an emptyDir under a read-only root fs. */
  scratch: '/tmp/nginx',
  /** Mount of the kubernetes.io/tls Secret. */
  tls: '/etc/nginx/tls',
  /** mime.types shipped with every nginx build. */
  mimeTypes: '/etc/nginx/mime.types',
} as const;

/** Name of the nginx upstream that fronts the API pods. */
export const EDGE_UPSTREAM = 'api';

/** Where the client's address comes from behind a load balancer (ngx_http_realip_module). */
export interface RealIpSettings {
  /**
   * CIDRs of the proxies in front of nginx (the load balancer's addresses or
   * subnet). Only a request from one of them may name another client address;
   * from anyone else the header is ignored.
   */
  readonly trustedProxies: readonly string[];
  /**
   * `X-Forwarded-For` (an L7 load balancer; the last address in it that is not a
   * trusted proxy is the client) or `proxy_protocol` (an L4 load balancer sending
   * the PROXY protocol header; every connection to the public ports must then
   * carry it).
   */
  readonly header: 'X-Forwarded-For' | 'proxy_protocol';
}

/** Response compression. */
export interface GzipSettings {
  /** Compress JSON responses (for clients that send `Accept-Encoding: gzip`). */
  readonly enabled: boolean;
  /** Smallest body compressed, in bytes (by Content-Length): below it gzip costs more CPU than it saves bytes. */
  readonly minLengthBytes: number;
  /** gzip level, 1 (fastest) to 9 (smallest). */
  readonly level: number;
}

/** What nginx.conf is rendered from (the edge tier's settings). */
export interface NginxSettings {
  /** Host names nginx answers for (`server_name`; `*.example.com` wildcards allowed); empty = any. */
  readonly hostnames: readonly string[];
  /** The per-client limit, its allowlist and per-route limits. */
  readonly rateLimit: RateLimit;
  /** TLS termination from a kubernetes.io/tls Secret; undefined = plain HTTP. */
  readonly tls?: { readonly secretName: string };
  /** HTTP/2 on the TLS listener (ALPN h2; HTTP/1.1 clients are served as before). */
  readonly http2: boolean;
  readonly gzip: GzipSettings;
  /** The client's address from a trusted load balancer; undefined = the connection's peer address. */
  readonly realIp?: RealIpSettings;
  /** Idle keepalive connections per nginx worker to the API upstream. */
  readonly upstreamKeepalive: number;
  readonly proxyTimeouts: {
    readonly connectSeconds: number;
    readonly readSeconds: number;
    readonly sendSeconds: number;
  };
  /** DNS server nginx re-resolves the API pods with (`resolve` upstream parameter). */
  readonly resolver: string;
}

/** A `server_name`: a DNS name, or one with a leading `*.` wildcard label (nginx matches it against any subdomain). */
export const SERVER_NAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Media types gzip compresses: the API's and the edge's own error bodies are JSON. */
export const GZIP_TYPES = ['application/json', 'application/problem+json'] as const;

export interface NginxConfInput {
  readonly edge: NginxSettings;
  /**
   * nginx worker processes: the container's CPU limit, rounded up. `auto` would start one per CPU of
   * the node, however small the limit, and the workers would share the limit's quota.
   */
  readonly workerProcesses: number;
  /** DNS name of the API's headless Service (one A record per ready pod). */
  readonly apiHeadlessHost: string;
  /** Port of the API pods. */
  readonly apiPort: number;
}

/** nginx workers for a container CPU limit (a Kubernetes quantity): the limit rounded up, at least 1. */
export function workersFor(cpuLimit: string): number {
  return Math.max(1, Math.ceil(parseQuantity(cpuLimit)));
}

const SECURITY_HEADERS = [
  'add_header X-Content-Type-Options "nosniff" always;',
  'add_header X-Frame-Options "DENY" always;',
  'add_header Referrer-Policy "no-referrer" always;',
  `add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;`,
  'add_header Permissions-Policy "interest-cohort=()" always;',
];

/**
 * Renders nginx.conf: least_conn upstream with keepalive, per-client rate limits (429),
 * optional TLS with HTTP/2, gzip for JSON, the client's address behind a trusted proxy,
 * and the internal status port.
 */
export function renderNginxConf(input: NginxConfInput): string {
  const { edge, apiHeadlessHost, apiPort, workerProcesses } = input;
  const { proxyTimeouts, realIp } = edge;
  const serverName = edge.hostnames.length ? edge.hostnames.join(' ') : '_';
  const tls = edge.tls !== undefined;
  // The load balancer's PROXY protocol header on every public connection.
  const proxyProtocol = realIp?.header === 'proxy_protocol' ? ' proxy_protocol' : '';
  const limits = renderRateLimits(edge.rateLimit);

  const proxy = [
    `proxy_pass http://${EDGE_UPSTREAM};`,
    '# HTTP/1.1 with an empty Connection header keeps upstream connections alive.',
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
    'proxy_set_header Host $host;',
    'proxy_set_header X-Real-IP $remote_addr;',
    'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    `proxy_set_header ${REQUEST_ID_HEADER} $request_id;`,
    `proxy_connect_timeout ${proxyTimeouts.connectSeconds}s;`,
    `proxy_read_timeout ${proxyTimeouts.readSeconds}s;`,
    `proxy_send_timeout ${proxyTimeouts.sendSeconds}s;`,
    '# A pod that refuses or drops the connection is retried on another one (idempotent requests only).',
    'proxy_next_upstream error timeout http_502;',
    'proxy_next_upstream_tries 3;',
    'proxy_next_upstream_timeout 10s;',
  ];
  const locations = renderLocations(limits, proxy);
  const headers = tls
    ? [...SECURITY_HEADERS, 'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;']
    : SECURITY_HEADERS;
  const errorPages = renderEdgeErrors(headers);

  const servers: string[][] = [];
  if (tls) {
    servers.push([
      'server {',
      `    listen ${EDGE_PORTS.http}${proxyProtocol} default_server;`,
      `    server_name ${serverName};`,
      '    return 308 https://$host$request_uri;',
      ...indent(renderEdgeErrors(SECURITY_HEADERS)),
      '}',
    ]);
    servers.push([
      'server {',
      `    listen ${EDGE_PORTS.https} ssl${proxyProtocol} default_server;`,
      ...(edge.http2 ? ['    http2 on;'] : []),
      `    server_name ${serverName};`,
      '    # Read again on every reload: the cert-reload sidecar reloads nginx when the Secret changes.',
      `    ssl_certificate ${EDGE_PATHS.tls}/tls.crt;`,
      `    ssl_certificate_key ${EDGE_PATHS.tls}/tls.key;`,
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    ssl_prefer_server_ciphers off;',
      '    ssl_session_cache shared:TLS:10m;',
      '    ssl_session_timeout 1d;',
      '    ssl_session_tickets off;',
      ...indent([...headers, ...locations, ...errorPages]),
      '}',
    ]);
  } else {
    servers.push([
      'server {',
      `    listen ${EDGE_PORTS.http}${proxyProtocol} default_server;`,
      `    server_name ${serverName};`,
      ...indent([...headers, ...locations, ...errorPages]),
      '}',
    ]);
  }
  servers.push([
    '# Internal status port: probes and the exporter. The Service never exposes it.',
    'server {',
    `    listen ${EDGE_PORTS.status};`,
    '    access_log off;',
    '    location = /healthz {',
    '        default_type text/plain;',
    '        return 200 "ok\\n";',
    '    }',
    '    location = /stub_status {',
    '        stub_status;',
    '    }',
    '    location / {',
    '        return 404;',
    '    }',
    '}',
  ]);

  const lines = [
    '# Rendered by constructs/edge/nginx-conf.ts; do not edit by hand.',
    `worker_processes ${workerProcesses};`,
    `pid ${EDGE_PATHS.scratch}/nginx.pid;`,
    'error_log /dev/stderr warn;',
    '',
    'events {',
    '    worker_connections 4096;',
    '}',
    '',
    'http {',
    ...indent([
      `include ${EDGE_PATHS.mimeTypes};`,
      'default_type application/octet-stream;',
      'server_tokens off;',
      // Behind a trusted proxy, remote_addr is the client; peer_addr is the proxy that connected.
      `log_format json escape=json '{"time":"$time_iso8601","remote_addr":"$remote_addr",${realIp ? '"peer_addr":"$realip_remote_addr",' : ''}"request_id":"$request_id",'`,
      '    \'"method":"$request_method","uri":"$request_uri","status":$status,"bytes":$body_bytes_sent,\'',
      '    \'"request_time":$request_time,"upstream":"$upstream_addr","upstream_time":"$upstream_response_time"}\';',
      '# Lines are written in 64 KiB batches, at the latest a second after they are logged: a write per',
      '# request cost the edge 6 % of its CPU per request (bench/results.md).',
      'access_log /dev/stdout json buffer=64k flush=1s;',
      'sendfile on;',
      'tcp_nopush on;',
      'keepalive_timeout 65s;',
      "# The API's own body limit (SERVICE_LIMITS.bodyBytes): one setting, the same 413 at the edge and the pod.",
      `client_max_body_size ${SERVICE_LIMITS.bodyBytes};`,
      `client_body_temp_path ${EDGE_PATHS.scratch}/client_temp;`,
      `proxy_temp_path ${EDGE_PATHS.scratch}/proxy_temp;`,
      `fastcgi_temp_path ${EDGE_PATHS.scratch}/fastcgi_temp;`,
      `uwsgi_temp_path ${EDGE_PATHS.scratch}/uwsgi_temp;`,
      `scgi_temp_path ${EDGE_PATHS.scratch}/scgi_temp;`,
      '',
      '# Pod IPs change on every rollout: re-resolve the headless Service every 10 s.',
      `resolver ${edge.resolver} valid=10s ipv6=off;`,
      'resolver_timeout 5s;',
      '',
      ...(realIp ? [...renderRealIp(realIp), ''] : []),
      ...(edge.gzip.enabled ? [...renderGzip(edge.gzip), ''] : []),
      ...limits.http,
      '',
      `upstream ${EDGE_UPSTREAM} {`,
      '    zone api_upstream 256k;',
      '    least_conn;',
      `    server ${apiHeadlessHost}:${apiPort} resolve max_fails=3 fail_timeout=30s;`,
      `    keepalive ${edge.upstreamKeepalive};`,
      '    keepalive_requests 1000;',
      '    keepalive_timeout 60s;',
      '}',
      '',
      ...servers.flatMap((s) => [...s, '']),
    ]),
    '}',
    '',
  ];
  return lines.map((l) => l.replace(/\s+$/, '')).join('\n');
}

/** set_real_ip_from / real_ip_header: the client's address, believed only from the trusted proxies. */
function renderRealIp(r: RealIpSettings): string[] {
  return [
    r.header === 'proxy_protocol'
      ? '# The load balancer sends the PROXY protocol header; its address is believed only from these proxies.'
      : '# Behind a load balancer: the client address comes from X-Forwarded-For, believed only from these proxies.',
    ...r.trustedProxies.map((c) => `set_real_ip_from ${c};`),
    `real_ip_header ${r.header};`,
    ...(r.header === 'proxy_protocol'
      ? []
      : [
          '# The client is the last address in the header that is not a trusted proxy: what a client',
          "# writes into the header itself comes before the proxy's entry and is never taken.",
          'real_ip_recursive on;',
        ]),
  ];
}

/** gzip for JSON above a size: responses pass through whole below it (no CPU spent). */
function renderGzip(g: GzipSettings): string[] {
  return [
    `# JSON of ${g.minLengthBytes} bytes or more is gzipped (level ${g.level}) for clients that accept it; a strong`,
    '# ETag becomes weak (W/"..."), which the API matches in If-None-Match, so 304s keep working.',
    'gzip on;',
    `gzip_types ${GZIP_TYPES.join(' ')};`,
    `gzip_min_length ${g.minLengthBytes};`,
    `gzip_comp_level ${g.level};`,
    '# Also behind a proxy that adds Via (a cloud load balancer); Vary tells caches the body depends on Accept-Encoding.',
    'gzip_proxied any;',
    'gzip_vary on;',
  ];
}
