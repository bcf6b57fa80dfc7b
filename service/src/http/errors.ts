/**
 * One error format for every route: `{ error, message, field? }`, the right
 * status, and never a stack trace or an internal message for a 5xx.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { isConnectionError } from '../db/database';

/** Largest accepted request body; larger ones get 413. */
export const BODY_LIMIT_BYTES = 64 * 1024;

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
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  503: 'Service Unavailable',
};

interface ValidationItem {
  instancePath?: string;
  message?: string;
  params?: { missingProperty?: string; additionalProperty?: string };
}

/** `body.email` from an Ajv error in the body (or `querystring.limit`, `params.id`). */
export function fieldOf(context: string | undefined, v: ValidationItem): string {
  const parts = (v.instancePath ?? '').split('/').filter(Boolean);
  const extra = v.params?.missingProperty ?? v.params?.additionalProperty;
  if (extra) parts.push(extra);
  return [context ?? 'body', ...parts].join('.');
}

function validationMessage(field: string, v: ValidationItem): string {
  if (v.params?.missingProperty) return `${field} is required`;
  if (v.params?.additionalProperty) return `${field} is not an accepted field`;
  return `${field} ${v.message ?? 'is invalid'}`;
}

/** PostgreSQL errors a client can cause, mapped to 409 with a message naming the field. */
function fromPostgres(err: { code?: string; constraint?: string; detail?: string }): HttpError | undefined {
  if (err.code === '23505') {
    const field = /\((?:lower\()?(\w+)\)?\)=/.exec(err.detail ?? '')?.[1];
    return new HttpError(409, `${field ?? 'value'} already exists`, field && `body.${field}`);
  }
  if (err.code === '23503') {
    const field = /Key \((\w+)\)=/.exec(err.detail ?? '')?.[1];
    return new HttpError(409, `${field ?? 'reference'} refers to a row that does not exist`, field && `body.${field}`);
  }
  return undefined;
}

/** Fastify's body errors, reworded to say what to send instead. */
function fromFastify(err: FastifyError, contentType: string | undefined): HttpError | undefined {
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new HttpError(
      415,
      `content-type ${JSON.stringify(contentType ?? '')} is not accepted; send application/json`,
      'headers.content-type',
    );
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new HttpError(413, `request body is larger than ${BODY_LIMIT_BYTES} bytes`);
  }
  return undefined;
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: 'Not Found', message: `Route ${request.method} ${request.url} not found` });
  });

  app.setErrorHandler((error: FastifyError & { field?: string }, request, reply) => {
    if (error.validation && error.validation.length > 0) {
      const v = error.validation[0] as ValidationItem;
      const field = fieldOf(error.validationContext, v);
      return reply.code(400).send({ error: 'Bad Request', message: validationMessage(field, v), field });
    }
    // A lost database is the platform's problem, not a bug: 503 tells clients and nginx to retry.
    const mapped =
      fromPostgres(error as { code?: string }) ??
      fromFastify(error, request.headers['content-type']) ??
      (isConnectionError(error) ? new HttpError(503, 'the database is unavailable; retry shortly') : error);
    const status = mapped.statusCode ?? error.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      const message = status === 503 ? mapped.message : 'internal error; see the service log for request ' + request.id;
      return reply.code(status).send({ error: STATUS_TEXT[status] ?? 'Internal Server Error', message });
    }
    const field = (mapped as HttpError).field;
    return reply
      .code(status)
      .send({ error: STATUS_TEXT[status] ?? 'Error', message: mapped.message, ...(field ? { field } : {}) });
  });
}
