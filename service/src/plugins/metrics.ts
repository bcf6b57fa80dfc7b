/**
 * Prometheus metrics with the names of the contract (SERVICE_METRICS), in a
 * registry of this app instance, served by server.ts on SERVICE_PORTS.metrics.
 */
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SERVICE_METRICS as M } from '../contract';
import type { Database } from '../db/database';

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: M.httpRequestDuration,
    help: 'HTTP request duration in seconds, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  /** A counter in this instance's registry. */
  private readonly counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  readonly cacheHits = this.counter(M.cacheHits, 'Cache lookups answered by the cache (Redis or the in-process tier).');
  readonly cacheLocalHits = this.counter(
    M.cacheLocalHits,
    'Cache hits answered by the in-process tier without a Redis round trip (also counted in the hits).',
  );
  readonly cacheMisses = this.counter(
    M.cacheMisses,
    'Cache lookups not answered by Redis (absent key or Redis unavailable).',
  );
  readonly cacheErrors = this.counter(
    M.cacheErrors,
    'Cache operations that failed or timed out; the request was served from the database.',
  );
  readonly dbQueries = this.counter(M.dbQueries, 'Database queries, by the kind of server that ran them.', ['target']);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Both targets exist from the start, so rate() works before the first replica read.
    this.dbQueries.inc({ target: 'primary' }, 0);
    this.dbQueries.inc({ target: 'replica' }, 0);
  }

  /** Pool and replica-lag gauges, read from the database object at scrape time. */
  observeDatabase(db: Database): void {
    const poolGauge = (name: string, help: string, read: (p: Database['primary']['pool']) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool'] as const,
        registers: [this.registry],
        collect() {
          for (const p of db.pools) this.set({ pool: p.name }, read(p.pool));
        },
      });
    poolGauge(M.dbPoolTotal, 'Open connections per pool.', (p) => p.totalCount);
    poolGauge(M.dbPoolIdle, 'Idle connections per pool.', (p) => p.idleCount);
    poolGauge(M.dbPoolWaiting, 'Requests waiting for a connection per pool.', (p) => p.waitingCount);
    new Gauge({
      name: M.replicaLagSeconds,
      help: 'Replay lag of each read replica in seconds, as last probed (-1 while the replica is down).',
      labelNames: ['replica'] as const,
      registers: [this.registry],
      collect() {
        for (const r of db.replicaStates) this.set({ replica: r.name }, r.healthy ? r.lagSeconds : -1);
      },
    });
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

export const metricsPlugin = fp(
  async (app) => {
    const metrics = new Metrics();
    app.decorate('metrics', metrics);
    app.addHook('onResponse', async (request, reply) => {
      metrics.httpDuration.observe(
        {
          method: request.method,
          // The route template (not the raw URL) keeps label cardinality bounded.
          route: request.routeOptions.url ?? 'unmatched',
          status_code: String(reply.statusCode),
        },
        reply.elapsedTime / 1000,
      );
    });
  },
  { name: 'metrics', fastify: '5.x' },
);
