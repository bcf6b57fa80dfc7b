/**
 * One error format for every route: `{ error, message, field? }`, the right
 * status, and never a stack trace or an internal message for a 5xx.
 */
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { SERVICE_LIMITS } from '../contract';
import { isConnectionError } from '../db/database';

/** Largest accepted request body; larger ones get 413 (the edge derives its limit from the same constant). */
export const BODY_LIMIT_BYTES = SERVICE_LIMITS.bodyBytes;

/** The 503 of a request that lost its database server (refused, reset, timed out). */
export const DATABASE_UNAVAILABLE_MESSAGE = 'the database is unavailable; retry shortly';

/** The 503 of a request that needs the primary while the primary counts as down (database.ts). */
export const PRIMARY_UNAVAILABLE_MESSAGE =
  'the primary database is unreachable; writes are refused until it is back; retry shortly';

/** An error a route throws on purpose, with its status. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  429: 'Too Many Requests',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  503: 'Service Unavailable',
};

interface ValidationItem {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: { missingProperty?: string; additionalProperty?: string; format?: string };
}

/** What a `date-time` format error says instead of Ajv's 'must match format "date-time"'. */
export const DATE_TIME_EXPECTED = 'must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z';

/** A name the client sent that is safe to repeat in a message (no markup, no control characters). */
const SAFE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** `body.email` from an Ajv error in the body (or `querystring.limit`, `params.id`). */
export function fieldOf(context: string | undefined, v: ValidationItem): string {
  const parts = (v.instancePath ?? '').split('/').filter(Boolean);
  const extra = v.params?.missingProperty ?? v.params?.additionalProperty;
  if (extra && SAFE_NAME.test(extra)) parts.push(extra);
  return [context ?? 'body', ...parts].join('.');
}

function validationMessage(field: string, v: ValidationItem, accepted: string[]): string {
  if (v.params?.missingProperty) return `${field} is required`;
  if (v.params?.additionalProperty) {
    // A name that is not safe to repeat is not echoed: the message lists what is accepted instead.
    if (!SAFE_NAME.test(v.params.additionalProperty)) {
      return `${field} has a field that is not accepted; accepted: ${accepted.join(', ')}`;
    }
    return `${field} is not an accepted field`;
  }
  if (v.keyword === 'format' && v.params?.format === 'date-time') return `${field} ${DATE_TIME_EXPECTED}`;
  return `${field} ${v.message ?? 'is invalid'}`;
}

/** The property names a part of the request accepts (for messages about the ones it does not). */
function acceptedNames(request: FastifyRequest, context: string | undefined): string[] {
  const schema = (request.routeOptions.schema as Record<string, { properties?: object }> | undefined)?.[
    context ?? 'body'
  ];
  return Object.keys(schema?.properties ?? {});
}

/** The Location of a resource created by a POST to `url`: its path (never the query string) and the id. */
export function locationOf(url: string, id: string): string {
  return `${url.split('?')[0].replace(/\/+$/, '')}/${id}`;
}

/** PostgreSQL errors a client can cause, mapped to 409 with a message naming the field. */
function fromPostgres(err: { code?: string; constraint?: string; detail?: string }): HttpError | undefined {
  if (err.code === '23505') {
    const field = /\((?:lower\()?(\w+)\)?\)=/.exec(err.detail ?? '')?.[1];
    return new HttpError(409, `${field ?? 'value'} already exists`, field ? `body.${field}` : 'body');
  }
  if (err.code === '23503') {
    const field = /Key \((\w+)\)=/.exec(err.detail ?? '')?.[1];
    return new HttpError(
      409,
      `${field ?? 'reference'} refers to a row that does not exist`,
      field ? `body.${field}` : 'body',
    );
  }
  return undefined;
}

/** A content type safe to repeat (a media type and parameters, nothing else). */
const SAFE_CONTENT_TYPE = /^[\w.+/-]{1,100}(;\s*[\w.-]+=[\w.-]+)*$/;

/** Fastify's request errors, reworded to say what to send instead and which part is at fault. */
function fromFastify(err: FastifyError, contentType: string | undefined): HttpError | undefined {
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const sent = contentType && SAFE_CONTENT_TYPE.test(contentType) ? JSON.stringify(contentType) : 'of this body';
    return new HttpError(415, `content-type ${sent} is not accepted; send application/json`, 'headers.content-type');
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new HttpError(413, `request body is larger than ${BODY_LIMIT_BYTES} bytes`, 'body');
  }
  // The JSON parser's errors (invalid, empty, a forbidden __proto__ key) carry no client input.
  if (err.code?.startsWith('FST_ERR_CTP_') || err.name === 'SyntaxError') {
    const status = err.statusCode ?? 400;
    if (status < 500) return new HttpError(status, err.message, 'body');
  }
  return undefined;
}

/** A path safe to repeat in a 404. */
const SAFE_PATH = /^[A-Za-z0-9/_.~-]{0,200}$/;

/** The 503 of a pod that is closing (instead of Fastify's, which has an extra `statusCode`). */
export const CLOSING = { error: 'Service Unavailable', message: 'this server is shutting down; retry' } as const;

export function installErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const where = SAFE_PATH.test(path) ? path : 'on this path';
    void reply
      .code(404)
      .send({ error: 'Not Found', message: `no route matches ${request.method} ${where}`, field: 'url' });
  });

  app.setErrorHandler((error: FastifyError & { field?: string }, request, reply) => {
    if (error.validation && error.validation.length > 0) {
      const v = error.validation[0] as ValidationItem;
      const field = fieldOf(error.validationContext, v);
      const message = validationMessage(field, v, acceptedNames(request, error.validationContext));
      return reply.code(400).send({ error: 'Bad Request', message, field });
    }
    // A lost database is the platform's problem, not a bug: 503 tells clients and nginx to retry.
    // A primary that counts as down gets its own message (refused at once, or after its wait budget).
    const mapped =
      fromPostgres(error as { code?: string }) ??
      fromFastify(error, request.headers['content-type']) ??
      ((error as { code?: string }).code === 'EPRIMARYDOWN'
        ? new HttpError(503, PRIMARY_UNAVAILABLE_MESSAGE)
        : isConnectionError(error)
          ? new HttpError(503, DATABASE_UNAVAILABLE_MESSAGE)
          : error);
    const status = mapped.statusCode ?? error.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      const message = status === 503 ? mapped.message : 'internal error; see the service log for request ' + request.id;
      return reply.code(status).send({ error: STATUS_TEXT[status] ?? 'Internal Server Error', message });
    }
    // Every 4xx names the part of the request at fault.
    const field = (mapped as HttpError).field ?? 'request';
    return reply.code(status).send({ error: STATUS_TEXT[status] ?? 'Error', message: mapped.message, field });
  });

  // Fastify's own 503 while closing has an extra `statusCode`; this one has the one error shape.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (closing) return reply.code(503).header('connection', 'close').send(CLOSING);
  });
}

/**
 * Fastify's `clientErrorHandler`: a request node's HTTP parser refuses (malformed
 * request line or headers) gets the one error shape too, then the socket closes.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: import('net').Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const body = JSON.stringify({
    error: tooLarge ? 'Request Header Fields Too Large' : 'Bad Request',
    message: tooLarge ? 'the request headers are too large' : 'the request is not valid HTTP',
    field: tooLarge ? 'headers' : 'request',
  });
  socket.end(
    `HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}
