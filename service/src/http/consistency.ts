/**
 * Read-your-writes across pods: a write answers with the primary's WAL position
 * (header `x-fastnext-lsn` and a short-lived cookie); a later read that carries
 * it (cookie, or header `x-fastnext-min-lsn`) is served only by a replica that
 * has replayed that position, else by the primary.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isLsn } from '../db/routing';

export const LSN_HEADER = 'x-fastnext-lsn';
export const MIN_LSN_HEADER = 'x-fastnext-min-lsn';
export const LSN_COOKIE = 'fastnext_lsn';
/** Seconds after a write during which the client's reads must see it. */
export const READ_YOUR_WRITES_SECONDS = 10;

export function rememberWrite(reply: FastifyReply, lsn: string | undefined): void {
  if (!lsn) return;
  reply.header(LSN_HEADER, lsn);
  reply.header(
    'set-cookie',
    `${LSN_COOKIE}=${encodeURIComponent(lsn)}; Max-Age=${READ_YOUR_WRITES_SECONDS}; Path=/; HttpOnly; SameSite=Lax`,
  );
}

export function minLsnOf(request: FastifyRequest): string | undefined {
  const header = request.headers[MIN_LSN_HEADER];
  if (typeof header === 'string' && isLsn(header)) return header;
  const cookie = request.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === LSN_COOKIE && v) {
      const lsn = decodeURIComponent(v);
      if (isLsn(lsn)) return lsn;
    }
  }
  return undefined;
}
