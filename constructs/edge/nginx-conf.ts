/**
 * nginx.conf of the edge tier, rendered from the typed config. The same bytes
 * go into the edge ConfigMap and into the tests that run Debian's nginx.
 */
import { REQUEST_ID_HEADER, SERVICE_LIMITS } from '../../service/src/contract';

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

/** What nginx.conf is rendered from (the edge tier's settings). */
export interface NginxSettings {
  /** Host names nginx answers for (`server_name`; `*.example.com` wildcards allowed); empty = any. */
  readonly hostnames: readonly string[];
  readonly rateLimit: {
    /** Requests per second per client IP. */
    readonly requestsPerSecond: number;
    /** Requests queued above the rate before nginx answers 429. */
    readonly burst: number;
  };
  /** TLS termination from a kubernetes.io/tls Secret; undefined = plain HTTP. */
  readonly tls?: { readonly secretName: string };
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

export interface NginxConfInput {
  readonly edge: NginxSettings;
  /** DNS name of the API's headless Service (one A record per ready pod). */
  readonly apiHeadlessHost: string;
  /** Port of the API pods. */
  readonly apiPort: number;
}

const SECURITY_HEADERS = [
  'add_header X-Content-Type-Options "nosniff" always;',
  'add_header X-Frame-Options "DENY" always;',
  'add_header Referrer-Policy "no-referrer" always;',
  `add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;`,
  'add_header Permissions-Policy "interest-cohort=()" always;',
];

/** Renders nginx.conf: least_conn upstream with keepalive, per-client rate limit (429), optional TLS, status port. */
export function renderNginxConf(input: NginxConfInput): string {
  const { edge, apiHeadlessHost, apiPort } = input;
  const { rateLimit, proxyTimeouts } = edge;
  const serverName = edge.hostnames.length ? edge.hostnames.join(' ') : '_';
  const tls = edge.tls !== undefined;

  const proxyLocation = [
    'location / {',
    `    limit_req zone=per_client burst=${rateLimit.burst} nodelay;`,
    `    proxy_pass http://${EDGE_UPSTREAM};`,
    '    # HTTP/1.1 with an empty Connection header keeps upstream connections alive.',
    '    proxy_http_version 1.1;',
    '    proxy_set_header Connection "";',
    '    proxy_set_header Host $host;',
    '    proxy_set_header X-Real-IP $remote_addr;',
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
    `    proxy_set_header ${REQUEST_ID_HEADER} $request_id;`,
    `    proxy_connect_timeout ${proxyTimeouts.connectSeconds}s;`,
    `    proxy_read_timeout ${proxyTimeouts.readSeconds}s;`,
    `    proxy_send_timeout ${proxyTimeouts.sendSeconds}s;`,
    '    # A pod that refuses or drops the connection is retried on another one (idempotent requests only).',
    '    proxy_next_upstream error timeout http_502;',
    '    proxy_next_upstream_tries 3;',
    '    proxy_next_upstream_timeout 10s;',
    '}',
  ];
  const headers = tls
    ? [...SECURITY_HEADERS, 'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;']
    : SECURITY_HEADERS;
  const errorPages = renderEdgeErrors(headers);

  const servers: string[][] = [];
  if (tls) {
    servers.push([
      'server {',
      `    listen ${EDGE_PORTS.http} default_server;`,
      `    server_name ${serverName};`,
      '    return 308 https://$host$request_uri;',
      ...indent(renderEdgeErrors(SECURITY_HEADERS)),
      '}',
    ]);
    servers.push([
      'server {',
      `    listen ${EDGE_PORTS.https} ssl default_server;`,
      `    server_name ${serverName};`,
      `    ssl_certificate ${EDGE_PATHS.tls}/tls.crt;`,
      `    ssl_certificate_key ${EDGE_PATHS.tls}/tls.key;`,
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    ssl_prefer_server_ciphers off;',
      '    ssl_session_cache shared:TLS:10m;',
      '    ssl_session_timeout 1d;',
      '    ssl_session_tickets off;',
      ...indent([...headers, ...proxyLocation, ...errorPages]),
      '}',
    ]);
  } else {
    servers.push([
      'server {',
      `    listen ${EDGE_PORTS.http} default_server;`,
      `    server_name ${serverName};`,
      ...indent([...headers, ...proxyLocation, ...errorPages]),
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
    '# Rendered by constructs/config-files/nginx-conf.ts; do not edit by hand.',
    'worker_processes auto;',
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
      'log_format json escape=json \'{"time":"$time_iso8601","remote_addr":"$remote_addr","request_id":"$request_id",\'',
      '    \'"method":"$request_method","uri":"$request_uri","status":$status,"bytes":$body_bytes_sent,\'',
      '    \'"request_time":$request_time,"upstream":"$upstream_addr","upstream_time":"$upstream_response_time"}\';',
      'access_log /dev/stdout json;',
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
      `# ${rateLimit.requestsPerSecond} requests/s per client IP, ${rateLimit.burst} more in a burst, then 429.`,
      `limit_req_zone $binary_remote_addr zone=per_client:10m rate=${rateLimit.requestsPerSecond}r/s;`,
      'limit_req_status 429;',
      'limit_req_log_level warn;',
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

/**
 * An error nginx answers itself, in the API's one error shape `{ error, message, field }`
 * (service/src/http/errors.ts), so a client parses every error the same way.
 */
export interface EdgeError {
  /** The statuses nginx raises that this page answers. */
  readonly raised: readonly number[];
  /** The status the client gets. */
  readonly status: number;
  readonly error: string;
  readonly message: string;
  /** The part of the request at fault (every 4xx names one). */
  readonly field?: string;
}

/** nginx's own errors: malformed requests, limits, the rate limit and no API pod to proxy to. */
export function edgeErrors(): EdgeError[] {
  return [
    { raised: [400], status: 400, error: 'Bad Request', message: 'the request is not valid HTTP', field: 'request' },
    // 494: a header line or all headers beyond large_client_header_buffers (nginx answers 400).
    {
      raised: [494],
      status: 400,
      error: 'Bad Request',
      message: 'the request headers are too large',
      field: 'headers',
    },
    {
      raised: [405],
      status: 405,
      error: 'Method Not Allowed',
      message: 'the edge does not accept this method',
      field: 'method',
    },
    {
      raised: [408],
      status: 408,
      error: 'Request Timeout',
      message: 'the request was not received in time',
      field: 'request',
    },
    {
      raised: [413],
      status: 413,
      error: 'Payload Too Large',
      message: `request body is larger than ${SERVICE_LIMITS.bodyBytes} bytes`,
      field: 'body',
    },
    // Only the internal error locations themselves: every other path is proxied (API 404s pass through).
    { raised: [404], status: 404, error: 'Not Found', message: 'no route matches this path', field: 'url' },
    { raised: [414], status: 414, error: 'URI Too Long', message: 'the URL is too long', field: 'url' },
    {
      raised: [429],
      status: 429,
      error: 'Too Many Requests',
      message: 'rate limit exceeded; retry after the time in Retry-After',
      field: 'request',
    },
    {
      raised: [500],
      status: 500,
      error: 'Internal Server Error',
      message: 'internal error at the edge; see its log for request $request_id',
    },
    {
      raised: [502, 503, 504],
      status: 503,
      error: 'Service Unavailable',
      message: 'no API pod available; retry shortly',
    },
  ];
}

/** Where nginx's own error bodies live (internal: clients cannot request them). */
const EDGE_ERROR_PREFIX = '/.edge-errors/';

/**
 * `error_page` + an internal location per edge error; the location repeats the headers
 * (add_header is not inherited into a location that has its own). A URI, not a named
 * location: nginx cannot redirect a request whose URI it never parsed (414) to a named one.
 */
function renderEdgeErrors(headers: readonly string[]): string[] {
  return edgeErrors().flatMap((e) => {
    const body = JSON.stringify({ error: e.error, message: e.message, ...(e.field ? { field: e.field } : {}) });
    const uri = `${EDGE_ERROR_PREFIX}${e.raised.join('-')}`;
    const rewrite = e.raised.length === 1 && e.raised[0] === e.status ? '' : `=${e.status} `;
    return [
      `error_page ${e.raised.join(' ')} ${rewrite}${uri};`,
      `location = ${uri} {`,
      '    internal;',
      '    default_type application/json;',
      ...indent([...headers]),
      // The limiter refills at least one request a second (rate >= 1 r/s): after 1 s there is room.
      ...(e.status === 429 ? ['    add_header Retry-After 1 always;'] : []),
      `    return ${e.status} '${body}';`,
      '}',
    ];
  });
}

function indent(lines: string[]): string[] {
  return lines.map((l) => (l ? `    ${l}` : l));
}
