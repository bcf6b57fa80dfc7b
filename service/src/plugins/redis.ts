/**
 * The Redis Cluster client as `app.redis` (undefined when the cache is disabled).
 *
 * It connects in the background: the service starts and serves from the
 * database while Redis is unreachable. Commands fail fast instead of queueing
 * (no offline queue, short command timeout), which is what lets the cache
 * degrade to the database rather than stall requests.
 */
import fp from 'fastify-plugin';
import { Cluster } from 'ioredis';
import { disconnectClient } from '../cache/cache';

declare module 'fastify' {
  interface FastifyInstance {
    redis: Cluster | undefined;
  }
}

export type NatMap = Record<string, { host: string; port: number }>;

/**
 * How the client follows redirections while slots move (docs/redis-scaling.md); the scaling drills'
 * clients use the same. An auto-pipelined command (ioredis 5 Pipeline.js) that meets a MOVED to a node
 * the client has no connection to yet goes to a random node until the slot-map refresh the MOVED
 * started is done, and each such answer spends a redirection: 4 x 50 ms ran out once in CI on a
 * loaded machine (a write failed with the bare MOVED). 16 (ioredis' default) x 50 ms gives the refresh
 * 800 ms; a cache call still gives up at its own budget (`timeoutMs`, 300 ms) and reads the database.
 */
export const CLUSTER_REDIRECTS = { maxRedirections: 16, retryDelayOnMoved: 50 } as const;

export const redisPlugin = fp<{ natMap?: NatMap }>(
  async (app, opts) => {
    const { cache, redis: cfg } = app.config;
    if (!cache.enabled) {
      app.decorate('redis', undefined);
      return;
    }
    const cluster = new Cluster(
      cfg.nodes.map((n) => ({ host: n.host, port: n.port })),
      {
        lazyConnect: true,
        // Only for running outside the cluster network (tests, local twin): maps the hostnames
        // the nodes announce to reachable addresses. In Kubernetes the cluster DNS resolves them.
        natMap: opts.natMap,
        // With TLS, connect to the names the nodes announce (not the addresses they resolve to):
        // the certificate holds the names, and Node checks the name it connected to.
        ...(cfg.tlsCa
          ? { dnsLookup: (address: string, done: (err: null, a: string) => void) => done(null, address) }
          : {}),
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        scaleReads: 'master',
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        // While a reshard moves a slot, redis-cli tells the nodes its new owner one by one, so a MOVED
        // may name a node that does not know yet: it is followed after 50 ms rather than at once.
        ...CLUSTER_REDIRECTS,
        slotsRefreshTimeout: 1000,
        clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
        redisOptions: {
          // The `app` ACL user (service/src/cache/acl.ts lists what it may send).
          username: cfg.username,
          password: cfg.password,
          // Every node's certificate checked against the CA and the host name (Node's defaults).
          ...(cfg.tlsCa ? { tls: { ca: cfg.tlsCa } } : {}),
          // No CLIENT SETINFO on connect: Redis 7.0 does not know it, and it is not in the ACL.
          disableClientInfo: true,
          connectTimeout: 1000,
          commandTimeout: 250,
          maxRetriesPerRequest: 1,
        },
      },
    );
    let wasReady = false;
    cluster.on('ready', () => {
      wasReady = true;
      app.log.info('redis cluster ready');
    });
    cluster.on('error', (err: Error) => {
      if (wasReady) app.log.warn({ err: err.message }, 'redis cluster error');
    });
    app.decorate('redis', cluster);
    app.addHook('onReady', async () => {
      cluster.connect().catch((err: Error) => app.log.warn({ err: err.message }, 'redis cluster not reachable yet'));
    });
    app.addHook('onClose', () => disconnectClient(cluster));
  },
  { name: 'redis', dependencies: ['env'], fastify: '5.x' },
);
