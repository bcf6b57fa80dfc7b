/**
 * Requests generated from the OpenAPI document (service/openapi.json, itself built from
 * the route schemas) with fast-check: every operation, its path and query parameters and
 * its JSON body, each value either one its schema accepts or a hostile one (wrong types,
 * NUL, lone surrogates, leap seconds, deep or large JSON, markup), plus hostile raw bodies
 * and headers. `problemsOf` says what is wrong with an answer: a 5xx, an error body not in
 * the one shape, a 4xx without a field, or a message that repeats unvalidated input.
 * Used by the fuzz tests (small, in CI) and service/bench/fuzz.ts (the big run).
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import OPENAPI from '../../openapi.json';
import { LSN_COOKIE, MIN_LSN_HEADER } from '../../src/http/consistency';

interface Schema {
  type?: string | string[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
}

interface Parameter {
  in: 'path' | 'query';
  name: string;
  required?: boolean;
  schema: Schema;
}

interface Operation {
  parameters?: Parameter[];
  requestBody?: { content: { 'application/json': { schema: Schema } } };
  security?: unknown[];
}

export interface Route {
  readonly method: string;
  /** The OpenAPI path, e.g. `/api/v1/users/{id}`. */
  readonly path: string;
  readonly operation: Operation;
}

export interface FuzzRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload?: string;
  /** Every string the client sent that no schema validated (what an error must not repeat). */
  readonly inputs: readonly string[];
}

export interface FuzzResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | number | undefined>;
  readonly body: string;
}

/** Every operation of the document. */
export function routesOf(doc: { paths: Record<string, Record<string, Operation>> } = OPENAPI as never): Route[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
}

export const routeName = (r: Route) => `${r.method} ${r.path}`;

const nested = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
};

/** Values no schema of this API accepts as they are, or that PostgreSQL cannot store. */
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    0,
    -1,
    1.5,
    2 ** 63,
    1e308,
    '',
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udc00y',
    '2026-06-30T23:59:60Z',
    '2026-02-30T00:00:00Z',
    '<script>alert(1)</script>',
    "'; DROP TABLE users; --",
    '%ZZ',
    '%0',
    'FFFFFFFF/FFFFFFFF',
    ['a@b.co'],
    [],
    {},
    { 'k\u0000': 1 },
    { '\ud800': 'x' },
    { __proto__x: 1, constructor: { prototype: 1 } },
    nested(40),
    nested(200),
    'x'.repeat(5000),
    { big: 'y'.repeat(20_000) },
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double(),
);

function valid(schema: Schema): fc.Arbitrary<unknown> {
  const types = Array.isArray(schema.type) ? schema.type : [schema.type ?? 'object'];
  return fc.oneof(...types.map((t) => validOfType(t, schema)));
}

function validOfType(type: string, s: Schema): fc.Arbitrary<unknown> {
  switch (type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return fc.integer({ min: s.minimum ?? -1000, max: s.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
    case 'string':
      if (s.enum) return fc.constantFrom(...s.enum);
      if (s.pattern) return fc.stringMatching(new RegExp(s.pattern));
      if (s.format === 'email') return fc.emailAddress();
      if (s.format === 'date-time') {
        return fc
          .date({ min: new Date('1990-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
          .map((d) => d.toISOString());
      }
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 40) });
    case 'array':
      return fc.array(valid(s.items ?? {}), { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 5, 5) });
    default: {
      if (!s.properties) return fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }));
      const props = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, value(v)]));
      return fc.record(props, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
    }
  }
}

/** Mostly values the schema accepts (so requests get past validation), else hostile ones. */
const value = (schema: Schema): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: valid(schema), weight: 3 }, { arbitrary: hostile, weight: 1 });

/** Percent-encodes any string, lone surrogates included (encodeURIComponent throws on those). */
function pct(s: string): string {
  return [...Buffer.from(s, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`,
    )
    .join('');
}

/** A query or path value as text: scalars as they print, anything else as JSON (a client could send it). */
function asText(v: unknown): string {
  if (typeof v === 'string') return v;
  return typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
}

/** Bodies no JSON serializer makes, and content types the API does not take. */
const rawBodies = fc.constantFrom(
  { payload: '{"email":', type: 'application/json' },
  { payload: '{"username":1e400,"email":"a@b.co"}', type: 'application/json' },
  { payload: '{"a":' + '{"a":'.repeat(4500) + '1' + '}'.repeat(4501), type: 'application/json' },
  { payload: '{"__proto__":{"x":1}}', type: 'application/json' },
  { payload: 'hello', type: 'text/plain' },
  { payload: 'a=1', type: 'application/x-www-form-urlencoded' },
  { payload: '{}', type: 'application/json; charset=<evil>' },
  { payload: 'x'.repeat(70_000), type: 'application/json' },
);

const hostileHeaders = fc.constantFrom<Record<string, string>>(
  {},
  { cookie: `${LSN_COOKIE}=%` },
  { cookie: `${LSN_COOKIE}=%ZZ` },
  { [MIN_LSN_HEADER]: 'FFFFFFFF/FFFFFFFF' },
  { 'x-request-id': '<script>evil</script>' },
  { 'x-request-id': 'r'.repeat(300) },
  { 'if-none-match': '*' },
);

/** Strings in a value, keys included. */
function stringsIn(v: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 50) return out;
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => stringsIn(x, out, depth + 1));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      stringsIn(x, out, depth + 1);
    }
  }
  return out;
}

/** Requests for one operation. `token` is sent on most requests to operations that need it. */
export function requestsFor(route: Route, token: string): fc.Arbitrary<FuzzRequest> {
  const params = route.operation.parameters ?? [];
  const paramArb = fc.record(Object.fromEntries(params.map((p) => [p.name, value(p.schema)])), {
    requiredKeys: params.filter((p) => p.in === 'path').map((p) => p.name),
  });
  const bodySchema = route.operation.requestBody?.content['application/json'].schema;
  const bodyArb: fc.Arbitrary<{ payload?: string; type?: string; value?: unknown }> = bodySchema
    ? fc.oneof(
        {
          arbitrary: value(bodySchema).map((v) => ({ payload: JSON.stringify(v), type: 'application/json', value: v })),
          weight: 5,
        },
        { arbitrary: rawBodies, weight: 1 },
      )
    : fc.constant({});
  const auth = route.operation.security
    ? fc.constantFrom<Record<string, string>>(
        { authorization: `Bearer ${token}` },
        { authorization: `Bearer ${token}` },
        { authorization: `Bearer ${token}` },
        {},
        { authorization: 'Bearer wrong' },
      )
    : fc.constant({});
  return fc.tuple(paramArb, bodyArb, auth, hostileHeaders).map(([values, body, authHeaders, extra]) => {
    let url = route.path;
    const query: string[] = [];
    const inputs: unknown[] = [body.value, body.payload, ...Object.values(extra)];
    for (const p of params) {
      if (!(p.name in values)) continue;
      const v = (values as Record<string, unknown>)[p.name];
      inputs.push(v);
      if (p.in === 'path') url = url.replace(`{${p.name}}`, pct(asText(v)) || '%20');
      // An array in a query is the parameter repeated (a client can send that).
      else for (const item of Array.isArray(v) ? v : [v]) query.push(`${p.name}=${pct(asText(item))}`);
    }
    if (query.length) url += `?${query.join('&')}`;
    const headers: Record<string, string> = { ...authHeaders, ...extra };
    if (body.type) headers['content-type'] = body.type;
    return { method: route.method, url, headers, payload: body.payload, inputs: stringsIn(inputs) };
  });
}

/** A string an error may repeat: ids, field names, content types (validated, plain ASCII). */
const PLAIN = /^[A-Za-z0-9 _.:/+=;-]*$/;

/** What is wrong with an answer (empty = fine). `allow5xx` admits expected 5xx (e.g. no database in unit tests). */
export function problemsOf(
  req: FuzzRequest,
  res: FuzzResponse,
  allow5xx: (body: unknown, status: number) => boolean = () => false,
): string[] {
  const problems: string[] = [];
  if (res.statusCode < 400) return problems;
  let body: { error?: unknown; message?: unknown; field?: unknown };
  try {
    body = JSON.parse(res.body);
  } catch {
    return [`${res.statusCode} body is not JSON: ${res.body.slice(0, 80)}`];
  }
  if (res.statusCode >= 500) {
    if (allow5xx(body, res.statusCode)) return problems;
    problems.push(`${res.statusCode}: ${res.body.slice(0, 200)}`);
  }
  const keys = Object.keys(body ?? {});
  if (
    typeof body?.error !== 'string' ||
    typeof body.message !== 'string' ||
    keys.some((k) => !['error', 'message', 'field'].includes(k)) ||
    (body.field !== undefined && typeof body.field !== 'string')
  ) {
    problems.push(`${res.statusCode} body not in the one error shape: ${res.body.slice(0, 200)}`);
    return problems;
  }
  if (res.statusCode < 500 && typeof body.field !== 'string') problems.push(`${res.statusCode} names no field`);
  const said = `${body.message} ${body.field ?? ''}`;
  for (const input of req.inputs) {
    if (input.length >= 6 && !PLAIN.test(input) && said.includes(input)) {
      problems.push(`${res.statusCode} repeats unvalidated input ${JSON.stringify(input.slice(0, 40))}`);
    }
  }
  return problems;
}

/** Health routes answer 503 with their own status body, by design (probes read it). */
export const isHealthBody = (route: Route, body: unknown) =>
  route.path.includes('/scaling/health/') && typeof (body as { status?: unknown })?.status === 'string';

/** `send` for fuzzRoutes: the request through Fastify's inject (no socket). */
export function injectInto(app: FastifyInstance): (req: FuzzRequest) => Promise<FuzzResponse> {
  return async (req) => {
    const res = await app.inject({
      method: req.method as 'GET',
      url: req.url,
      headers: req.headers,
      payload: req.payload,
    });
    return { statusCode: res.statusCode, headers: res.headers, body: res.body };
  };
}

/**
 * Runs generated requests for each route through `send` with fast-check (which shrinks a
 * failure to a small request) and fails with the first problem found. Bounded in runs and time.
 */
export async function fuzzRoutes(
  send: (req: FuzzRequest) => Promise<FuzzResponse>,
  opts: {
    token: string;
    numRuns: number;
    /** Per route. */
    timeLimitMs: number;
    seed?: number;
    allow5xx?: (route: Route, body: unknown, status: number) => boolean;
  },
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const route of routesOf()) {
    const name = routeName(route);
    counts[name] = 0;
    await fc.assert(
      fc.asyncProperty(requestsFor(route, opts.token), async (req) => {
        counts[name]++;
        const res = await send(req);
        const problems = problemsOf(req, res, (body, status) => opts.allow5xx?.(route, body, status) ?? false);
        if (problems.length) throw new Error(`${req.method} ${req.url.slice(0, 200)}: ${problems.join('; ')}`);
      }),
      { numRuns: opts.numRuns, interruptAfterTimeLimit: opts.timeLimitMs, seed: opts.seed, endOnFailure: false },
    );
  }
  return counts;
}
