/** The PostgreSQL pools (primary + replicas) as `app.db`; closed when the app closes. */
import fp from 'fastify-plugin';
import { Database } from '../db/database';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
  }
}

export const pgPlugin = fp<{ probeIntervalSeconds?: number }>(
  async (app, opts) => {
    const db = new Database(app.config.postgres, app.log, {
      probeIntervalSeconds: opts.probeIntervalSeconds,
      onQuery: (target) => app.metrics.dbQueries.inc({ target }),
    });
    app.metrics.observeDatabase(db);
    app.decorate('db', db);
    app.addHook('onReady', async () => db.start());
    app.addHook('onClose', async () => db.close());
  },
  { name: 'pg', dependencies: ['env', 'metrics'], fastify: '5.x' },
);
