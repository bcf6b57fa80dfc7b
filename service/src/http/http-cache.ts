/**
 * HTTP caching for GETs: a strong ETag over the response body, 304 on a
 * matching If-None-Match, and a Cache-Control per route (`config.cacheControl`);
 * everything else is `no-store`.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache-Control of a successful GET of this route; absent = no-store, no ETag. */
    cacheControl?: string;
  }
}

export function etagOf(body: string | Buffer): string {
  return `"${createHash('sha1').update(body).digest('base64url')}"`;
}

function matches(ifNoneMatch: string, etag: string): boolean {
  return ifNoneMatch
    .split(',')
    .map((s) => s.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}

export function installHttpCaching(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const cacheControl = request.routeOptions.config?.cacheControl;
    if (!cacheControl || (request.method !== 'GET' && request.method !== 'HEAD') || reply.statusCode !== 200) {
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
      return payload;
    }
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
    const etag = etagOf(payload);
    reply.header('etag', etag).header('cache-control', cacheControl);
    const inm = request.headers['if-none-match'];
    if (inm && matches(inm, etag)) {
      // No body and no Content-Length (RFC 9110 §15.4.5): a null payload is how Fastify sends neither.
      reply.code(304);
      reply.removeHeader('content-length');
      return null;
    }
    return payload;
  });
}
