/**
 * nginx's own error answers (400, 413, 429, 503, ...), in the API's one error
 * shape, rendered into every public server of nginx.conf.
 */
import { SERVICE_LIMITS } from '../../service/src/contract';

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
export function renderEdgeErrors(headers: readonly string[]): string[] {
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
      // Every limit, the default and each route's, refills at least one request a second (rate >= 1 r/s): after 1 s there is room.
      ...(e.status === 429 ? ['    add_header Retry-After 1 always;'] : []),
      `    return ${e.status} '${body}';`,
      '}',
    ];
  });
}

/** Indents nginx.conf lines by one level (empty lines stay empty). */
export function indent(lines: readonly string[]): string[] {
  return lines.map((l) => (l ? `    ${l}` : l));
}
