/** The PostgreSQL pools (primary + replicas) as `app.db`; closed when the app closes. */
import { Database } from '../db/database';
import { shared } from './plugin';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
  }
}

export const pgPlugin = shared<{ probeIntervalSeconds?: number }>(async (app, opts) => {
  const db = new Database(app.config.postgres, app.log, {
    probeIntervalSeconds: opts.probeIntervalSeconds,
    onQuery: (target) => app.metrics.dbQueries.inc({ target }),
  });
  app.metrics.observeDatabase(db);
  app.decorate('db', db);
  app.addHook('onReady', async () => db.start());
  app.addHook('onClose', async () => db.close());
});
