/**
 * What the route schemas alone cannot say about client input:
 * - bodies are validated without type coercion (a JSON `1` is not the string "1",
 *   `["a"]` is not "a", `null` is not `false`); the query string and path, which
 *   are text by nature, are still read as numbers and booleans where declared;
 * - timestamps are RFC 3339 date-times that exist (no second 60, no 30 February);
 * - every string and JSON key is one PostgreSQL can store (no NUL, valid UTF-16);
 * - free-form JSON fields are bounded in depth and size (`SERVICE_LIMITS`).
 */
import Ajv, { type Options } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyRequest, FastifySchemaCompiler } from 'fastify';
import { SERVICE_LIMITS } from '../contract';
import { HttpError } from './errors';

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/;

/** A date-time PostgreSQL and `Date` both read as the same instant: no leap seconds, no 24:00. */
export function isStrictDateTime(s: string): boolean {
  const m = DATE_TIME.exec(s);
  if (!m) return false;
  const [year, month, day, hour, minute, second, offH, offM] = m.slice(1).map((v) => (v === undefined ? 0 : +v));
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return (
    year >= 1 &&
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysInMonth &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offH <= 23 &&
    offM <= 59 &&
    !Number.isNaN(Date.parse(s))
  );
}

function makeAjv(coerceTypes: Options['coerceTypes']): Ajv {
  // Fastify's own defaults, but additional properties are refused (not removed) and types per part.
  const ajv = new Ajv({
    coerceTypes,
    useDefaults: true,
    removeAdditional: false,
    addUsedSchema: false,
    allErrors: false,
  });
  addFormats(ajv);
  ajv.addFormat('date-time', isStrictDateTime);
  return ajv;
}

/** Fastify's validator compiler: strict types for bodies, text-to-scalar coercion for query, params, headers. */
export function validatorCompiler(): FastifySchemaCompiler<object> {
  const strict = makeAjv(false);
  // `true`, not 'array': a repeated query parameter is an error, not its first value.
  const text = makeAjv(true);
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : text).compile(schema);
}

/** How a number or boolean is written in a query string or path; Ajv alone also takes `-Infinity`, `1e400`, `0x10`. */
const TEXT_SCALARS: Record<string, RegExp> = {
  integer: /^-?\d{1,15}$/,
  number: /^-?\d{1,15}(\.\d{1,15})?$/,
  boolean: /^(true|false)$/,
};

/**
 * preValidation: a query or path value declared integer, number or boolean must be written as one
 * (Ajv's coercion would read `-Infinity` as a number, which PostgreSQL then refuses).
 */
export async function checkTextScalars(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema as Record<string, PropertySchemas | undefined> | undefined;
  const parts: [string, unknown][] = [
    ['querystring', request.query],
    ['params', request.params],
  ];
  for (const [part, value] of parts) {
    const properties = schema?.[part]?.properties;
    if (!properties || value === null || typeof value !== 'object') continue;
    for (const [key, sent] of Object.entries(value)) {
      const type = properties[key]?.type;
      const pattern = typeof type === 'string' ? TEXT_SCALARS[type] : undefined;
      if (!pattern) continue;
      for (const item of Array.isArray(sent) ? sent : [sent]) {
        if (typeof item === 'string' && !pattern.test(item)) {
          throw new HttpError(400, `${part}.${key} must be ${type}`, `${part}.${key}`);
        }
      }
    }
  }
}

type Problem = 'nul' | 'surrogate' | 'depth';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function stringProblem(s: string): Problem | undefined {
  if (s.includes('\u0000')) return 'nul';
  if (LONE_SURROGATE.test(s)) return 'surrogate';
  return undefined;
}

/** The first problem in a value, walking no deeper than the bound (so deep input costs no deep recursion). */
function problemIn(value: unknown, level: number): Problem | undefined {
  if (typeof value === 'string') return stringProblem(value);
  if (value === null || typeof value !== 'object') return undefined;
  if (level > SERVICE_LIMITS.jsonDepth) return 'depth';
  if (Array.isArray(value)) {
    for (const item of value) {
      const p = problemIn(item, level + 1);
      if (p) return p;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const p = stringProblem(key) ?? problemIn(item, level + 1);
    if (p) return p;
  }
  return undefined;
}

const MESSAGES: Record<Problem, string> = {
  nul: 'contains a NUL character (\\u0000), which PostgreSQL cannot store',
  surrogate: 'contains a lone UTF-16 surrogate (not valid Unicode), which PostgreSQL cannot store',
  depth: `is nested deeper than ${SERVICE_LIMITS.jsonDepth} levels`,
};

interface PropertySchemas {
  properties?: Record<string, { type?: string | readonly string[]; properties?: object }>;
}

/** A free-form JSON object (stored as JSONB): an object schema that declares no properties. */
function isFreeForm(schema: PropertySchemas | undefined, key: string): boolean {
  const s = schema?.properties?.[key];
  if (!s || s.properties) return false;
  return s.type === 'object' || (Array.isArray(s.type) && s.type.includes('object'));
}

/**
 * preHandler: runs after schema validation, so every top-level name is one the schema
 * accepts and can be named in the error without echoing client input.
 */
export async function checkStorable(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema as { body?: PropertySchemas } | undefined;
  const parts: [string, unknown][] = [
    ['params', request.params],
    ['querystring', request.query],
    ['body', request.body],
  ];
  for (const [part, value] of parts) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    for (const [key, item] of Object.entries(value)) {
      const field = `${part}.${key}`;
      const problem = problemIn(item, 1);
      if (problem) throw new HttpError(400, `${field} ${MESSAGES[problem]}`, field);
      if (part === 'body' && isFreeForm(schema?.body, key)) {
        const bytes = Buffer.byteLength(JSON.stringify(item));
        if (bytes > SERVICE_LIMITS.jsonBytes) {
          throw new HttpError(400, `${field} is larger than ${SERVICE_LIMITS.jsonBytes} bytes as JSON`, field);
        }
      }
    }
  }
}
