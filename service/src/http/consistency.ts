/**
 * Read-your-writes across pods: a write answers with the primary's WAL position
 * (header `x-fastnext-lsn` and a short-lived cookie); a later read that carries
 * it (cookie, or header `x-fastnext-min-lsn`) skips the shared cache and is served
 * only by a replica that has replayed that position, else by the primary.
 *
 * The position travels as a token the service signs, `<lsn>.<expires>.<hmac>`:
 * a position the service did not issue (`FFFFFFFF/FFFFFFFF`, which would pin every
 * read on the primary and bypass the cache), an altered one or an expired one is
 * ignored, not trusted. The key is derived from the management token, which every
 * pod already shares; rotating it only forgets the tokens of the last few seconds.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const LSN_HEADER = 'x-fastnext-lsn';
export const MIN_LSN_HEADER = 'x-fastnext-min-lsn';
export const LSN_COOKIE = 'fastnext_lsn';
/** Seconds after a write during which the client's reads must see it. */
export const READ_YOUR_WRITES_SECONDS = 10;

const TOKEN = /^([0-9A-F]{1,8}\/[0-9A-F]{1,8})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

const signatureOf = (lsn: string, expires: string, secret: string): Buffer =>
  createHmac('sha256', secret).update(`fastnext read-your-writes v1\n${lsn}\n${expires}`).digest();

/** The token of a write's position, valid READ_YOUR_WRITES_SECONDS from `now`. */
export function issuePosition(lsn: string, secret: string, now = Date.now()): string {
  const upper = lsn.toUpperCase();
  const expires = String(Math.floor(now / 1000) + READ_YOUR_WRITES_SECONDS);
  return `${upper}.${expires}.${signatureOf(upper, expires, secret).toString('base64url')}`;
}

/** The LSN of a token this service issued and that has not expired; undefined for anything else. */
export function verifyPosition(token: string, secret: string, now = Date.now()): string | undefined {
  const m = TOKEN.exec(token);
  if (!m) return undefined;
  const [, lsn, expires, signature] = m;
  const nowSeconds = Math.floor(now / 1000);
  if (+expires < nowSeconds || +expires > nowSeconds + READ_YOUR_WRITES_SECONDS) return undefined;
  const sent = Buffer.from(signature, 'base64url');
  const expected = signatureOf(lsn, expires, secret);
  return sent.length === expected.length && timingSafeEqual(sent, expected) ? lsn : undefined;
}

/** The LSN of a token (the part before the signature); for tests and clients that wait for replay. */
export function positionOf(token: string): string {
  return token.split('.')[0];
}

export function rememberWrite(reply: FastifyReply, lsn: string | undefined, secret: string): void {
  if (!lsn) return;
  const token = issuePosition(lsn, secret);
  reply.header(LSN_HEADER, token);
  reply.header(
    'set-cookie',
    `${LSN_COOKIE}=${encodeURIComponent(token)}; Max-Age=${READ_YOUR_WRITES_SECONDS}; Path=/; HttpOnly; SameSite=Lax`,
  );
}

function safeDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined; // `%`, `%ZZ`: not a token we issued
  }
}

/** The caller's verified write position, from the header or the cookie; undefined when there is none. */
export function minLsnOf(request: Pick<FastifyRequest, 'headers'>, secret: string): string | undefined {
  const header = request.headers[MIN_LSN_HEADER];
  if (typeof header === 'string') {
    const lsn = verifyPosition(header, secret);
    if (lsn) return lsn;
  }
  const cookie = request.headers.cookie;
  if (typeof cookie !== 'string') return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== LSN_COOKIE) continue;
    const value = safeDecode(part.slice(eq + 1).trim());
    const lsn = value === undefined ? undefined : verifyPosition(value, secret);
    if (lsn) return lsn;
  }
  return undefined;
}
