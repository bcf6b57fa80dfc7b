/** Bearer-token check of the management endpoints (token from a mounted Secret). */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './errors';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function requireToken(token: string) {
  const expected = digest(token);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const m = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
    // Comparing digests keeps the comparison constant-time whatever the length sent.
    if (!m || !timingSafeEqual(digest(m[1]), expected)) {
      reply.header('www-authenticate', 'Bearer realm="fastnext-management"');
      throw new HttpError(
        401,
        'a valid management token is required: send Authorization: Bearer <token>',
        'headers.authorization',
      );
    }
  };
}
