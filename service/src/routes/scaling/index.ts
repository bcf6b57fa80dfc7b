/** Health probes (open) and replication status (bearer token). */
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import type { FromSchema } from 'json-schema-to-ts';
import { HEALTH_ROUTES } from '../../contract';
import { formatLsn } from '../../db/routing';
import { requireToken } from '../../http/auth';
import { withErrors } from '../../schemas/common';
import { deepHealthResponse, livenessResponse, readinessResponse } from '../../schemas/health';
import { MANAGEMENT, replicationRow, replicationStatusResponse } from '../../schemas/management';

const READINESS_TIMEOUT_MS = 1000;
const DEEP_TIMEOUT_MS = 2000;

async function timed<T>(
  fn: () => Promise<T>,
): Promise<{ status: 'up' | 'down'; latency_ms: number; error?: string; detail?: T }> {
  const start = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - start) / 1e6;
  try {
    const detail = await fn();
    return { status: 'up', latency_ms: ms(), detail };
  } catch (err) {
    return { status: 'down', latency_ms: ms(), error: (err as Error).message };
  }
}

const tags = ['health'];

const scaling: FastifyPluginAsyncJsonSchemaToTs = async (app) => {
  /** The process answers; dependencies are not checked (a DB outage must not restart every pod). */
  app.get(HEALTH_ROUTES.liveness, { schema: { tags, response: withErrors({ 200: livenessResponse }) } }, async () => ({
    status: 'ok' as const,
  }));

  /** Ready = not draining and the primary answers. Redis and replicas are optional (we degrade). */
  const readiness = { tags, response: withErrors({ 200: readinessResponse, 503: readinessResponse }) };
  app.get(HEALTH_ROUTES.readiness, { schema: readiness }, async (_request, reply) => {
    if (app.draining) return reply.code(503).send({ status: 'draining' });
    try {
      await app.db.onPrimary('SELECT 1', [], READINESS_TIMEOUT_MS);
      return { status: 'ready' as const };
    } catch (err) {
      return reply.code(503).send({ status: 'not ready', primary: 'down', error: (err as Error).message });
    }
  });

  const deep = { tags, response: withErrors({ 200: deepHealthResponse, 503: deepHealthResponse }) };
  app.get(HEALTH_ROUTES.deep, { schema: deep }, async (_request, reply) => {
    const [primary, replicas, redis] = await Promise.all([
      timed(() => app.db.onPool(app.db.primary, 'SELECT 1', DEEP_TIMEOUT_MS)),
      Promise.all(
        app.db.replicas.map(async (r, i) => ({
          name: r.name,
          ...(await timed(() => app.db.onPool(r, 'SELECT 1', DEEP_TIMEOUT_MS))),
          lag_seconds: app.db.replicaStates[i].lagSeconds,
          used_for_reads: app.db.replicaStates[i].healthy,
        })),
      ),
      app.config.cache.enabled
        ? timed(async () => {
            const masters = app.cache.masters();
            if (masters.length === 0) throw new Error(`cluster not ready (client status ${app.redis?.status})`);
            await Promise.all(masters.map((m) => m.ping()));
            return { masters: masters.length };
          })
        : Promise.resolve({ status: 'disabled' as const, latency_ms: 0 }),
    ]);
    const components = {
      primary: { status: primary.status, latency_ms: primary.latency_ms, error: primary.error },
      replicas: replicas.map(({ detail: _d, ...r }) => r),
      redis: { status: redis.status, latency_ms: redis.latency_ms, error: 'error' in redis ? redis.error : undefined },
    };
    // Only the primary is required; replicas and Redis down = degraded but serving.
    const status =
      app.draining || primary.status === 'down'
        ? 'down'
        : replicas.some((r) => r.status === 'down') || redis.status === 'down'
          ? 'degraded'
          : 'up';
    return reply.code(status === 'down' ? 503 : 200).send({ status, draining: app.draining, components });
  });

  const replication = { ...MANAGEMENT, response: withErrors({ 200: replicationStatusResponse }) };
  // onRequest: the token is checked before the input.
  const onRequest = requireToken(app.config.managementToken);
  app.get('/scaling/replication/status', { schema: replication, onRequest }, async () => {
    const fromPrimary = await app.db.onPrimary<FromSchema<typeof replicationRow>>(
      `SELECT application_name, client_addr::text, state, sync_state, sent_lsn::text, replay_lsn::text,
              pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
              EXTRACT(EPOCH FROM replay_lag)::float8 AS replay_lag_seconds
         FROM pg_stat_replication ORDER BY application_name`,
    );
    return {
      primary: { replicas: fromPrimary },
      // What this pod observes from each replica it reads from.
      read_replicas: app.db.replicas.map((r, i) => {
        const state = app.db.replicaStates[i];
        return {
          name: r.name,
          address: `${r.address.host}:${r.address.port}`,
          healthy: state.healthy,
          lag_seconds: state.lagSeconds,
          replay_lsn: state.replayLsn === undefined ? null : formatLsn(state.replayLsn),
        };
      }),
    };
  });
};

export default scaling;
