/** JSON Schemas shared by the routes (Fastify validates every input with them). */
import { SERVICE_LIMITS } from '../contract';

/** What every free-form JSON field accepts beyond its schema (checked by http/input.ts). */
export const JSON_FIELD_BOUNDS =
  `at most ${SERVICE_LIMITS.jsonDepth} levels deep and ${SERVICE_LIMITS.jsonBytes} bytes as JSON; ` +
  'no NUL (\\u0000) and no lone UTF-16 surrogate in any key or string';

export const idParam = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$', description: 'a positive integer id' } },
} as const;

export const id = { type: 'string', pattern: '^[1-9][0-9]{0,17}$' } as const;

export const limit = { type: 'integer', minimum: 1, maximum: 100, default: 20 } as const;

export const settings = {
  type: 'object',
  maxProperties: 100,
  description: `free-form JSON object stored as JSONB: ${JSON_FIELD_BOUNDS}`,
} as const;

/** The one error body of every route (http/errors.ts): `{ error, message, field? }`. */
export const errorBody = {
  type: 'object',
  description: 'the error: what went wrong and the input at fault; a 5xx carries no internal detail',
  required: ['error', 'message'],
  additionalProperties: false,
  properties: {
    error: { type: 'string', description: 'the HTTP status text' },
    message: { type: 'string', description: 'what went wrong and what to send instead' },
    field: { type: 'string', description: 'the input at fault, e.g. `body.email` or `querystring.limit`' },
  },
} as const;

/**
 * A route's response schemas: its success bodies plus the error body for every 4xx and 5xx.
 * Fastify serializes with them (fast-json-stringify), so each must list every property sent.
 */
export function withErrors<const T extends Record<number, object>>(success: T) {
  return { ...success, '4xx': errorBody, '5xx': errorBody } as const;
}

/** A timestamp, as PostgreSQL returns it (a Date) or as the cache holds it (an ISO string). */
export const timestamp = { type: 'string', format: 'date-time' } as const;

/** `{ items: [...] }`, the body of every list. */
export const listOf = <const T extends object>(item: T) =>
  ({
    type: 'object',
    required: ['items'],
    additionalProperties: false,
    properties: { items: { type: 'array', items: item } },
  }) as const;

/** An object with exactly these properties, all present (a SQL row, a response body). */
export const row = <const P extends Record<string, object>>(properties: P) =>
  ({ type: 'object', additionalProperties: false, required: Object.keys(properties), properties }) as unknown as {
    readonly type: 'object';
    readonly additionalProperties: false;
    readonly required: readonly (keyof P & string)[];
    readonly properties: P;
  };
