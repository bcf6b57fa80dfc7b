import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Ctx } from '../domain/context';
import { minLsnOf } from '../http/consistency';

export function ctxOf(app: FastifyInstance, request?: FastifyRequest): Ctx {
  return {
    db: app.db,
    cache: app.cache,
    minLsn: request ? minLsnOf(request, app.config.managementToken) : undefined,
    replicaMaxLagSeconds: app.config.postgres.replicaMaxLagSeconds,
  };
}

/** Cache-Control of cacheable API reads: clients and proxies revalidate each time with the ETag. */
export const REVALIDATE = 'private, no-cache';
