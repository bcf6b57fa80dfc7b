/** Health probes (open) and replication status (bearer token). */
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyInstance } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { FAULT_ROUTES, HEALTH_ROUTES } from '../../contract';
import { formatLsn } from '../../db/routing';
import { requireToken } from '../../http/auth';
import { withErrors } from '../../schemas/common';
import { blockEventLoopResponse, deepHealthResponse, livenessResponse, readinessResponse } from '../../schemas/health';
import { MANAGEMENT, replicationRow, replicationStatusResponse } from '../../schemas/management';

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

/** What this pod can serve now, from the probes' last results. */
export function servingState(app: FastifyInstance): {
  reads: boolean;
  writes: boolean;
  sources: { primary: boolean; replicas: number; cache: boolean };
} {
  const { healthy: primary, down } = app.db.primaryState;
  const replicas = app.db.replicaStates.filter((r) => r.healthy).length;
  const cache = app.config.cache.enabled && app.cache.servingReads();
  // Writes are tried unless the primary counts as down (a failed probe alone refuses none: database.ts).
  return { reads: primary || replicas > 0 || cache, writes: !down, sources: { primary, replicas, cache } };
}

const scaling: FastifyPluginAsyncJsonSchemaToTs = async (app) => {
  /** The process answers; dependencies are not checked (a DB outage must not restart every pod). */
  app.get(HEALTH_ROUTES.liveness, { schema: { tags, response: withErrors({ 200: livenessResponse }) } }, async () => ({
    status: 'ok' as const,
  }));

  /**
   * Ready = not draining and this pod can answer reads: the cache, a replica or the primary serves
   * them. A primary outage alone keeps every pod in rotation (reads work, writes get a fast 503):
   * failing readiness on a dependency every pod shares would take them all out at once and turn a
   * write outage into a total one (docs/health.md). Reads the probes' last results, never the
   * network, so only a wedged process or a pod with no data source fails it.
   */
  const readiness = { tags, response: withErrors({ 200: readinessResponse, 503: readinessResponse }) };
  app.get(HEALTH_ROUTES.readiness, { schema: readiness }, async (_request, reply) => {
    if (app.draining) return reply.code(503).send({ status: 'draining' });
    const serving = servingState(app);
    if (!serving.reads) {
      return reply.code(503).send({
        status: 'not ready',
        reason: 'no data source for reads: the primary, every replica and the cache are unreachable',
        ...serving,
      });
    }
    return { status: 'ready' as const, ...serving };
  });

  const deep = { tags, response: withErrors({ 200: deepHealthResponse, 503: deepHealthResponse }) };
  app.get(HEALTH_ROUTES.deep, { schema: deep }, async (_request, reply) => {
    const p = app.db.primaryState;
    // The primary's state is the probe's (at most one probe interval old): a query here would
    // hang on a frozen primary and hold a pool connection while it does.
    const primary = {
      status: p.healthy ? ('up' as const) : ('down' as const),
      latency_ms: p.latencyMs,
      error: p.error,
    };
    const [replicas, redis] = await Promise.all([
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
      primary: { ...primary, checked_at: new Date(p.checkedAt).toISOString() },
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
    return reply
      .code(status === 'down' ? 503 : 200)
      .send({ status, draining: app.draining, serving: servingState(app), components });
  });

  if (app.config.faultInjection) {
    app.log.warn(`${FAULT_ROUTES.blockEventLoop} is enabled (FAULT_INJECTION=true): drills only`);
    const block = {
      ...MANAGEMENT,
      body: {
        type: 'object',
        required: ['seconds'],
        additionalProperties: false,
        properties: { seconds: { type: 'number', minimum: 0, maximum: 3600 } },
      },
      response: withErrors({ 202: blockEventLoopResponse }),
    } as const;
    app.post(
      FAULT_ROUTES.blockEventLoop,
      { schema: block, preHandler: requireToken(app.config.managementToken) },
      async (request, reply) => {
        const { seconds } = request.body;
        // After the answer is written: the caller learns the block began, then nothing answers.
        setTimeout(() => {
          const until = Date.now() + seconds * 1000;
          while (Date.now() < until) {
            // Busy: no timer, socket or probe is served until this returns.
          }
        }, 20);
        return reply.code(202).send({ blocking_seconds: seconds });
      },
    );
  }

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
