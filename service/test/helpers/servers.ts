/**
 * The service's integration tests run against the data tier's loopback launcher
 * (tools/runtime/launcher): real Patroni-managed PostgreSQL members (leader + replicas, reached
 * directly: the service's routing is what these tests prove, not the pooler's) and a real
 * six-node Redis Cluster, started from the dev environment's shipped ConfigMaps.
 */
import type { FastifyInstance } from 'fastify';
import { Client } from 'pg';
import { loadEnvironment } from '../../../stacks/environments';
import { synthObjects } from '../../../stacks/synth';
import {
  startPatroni,
  startRedisCluster,
  type PatroniLaunch,
  type RedisClusterLaunch,
} from '../../../tools/runtime/launcher';
import { buildApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { migrate } from '../../src/migrations/migrate';

export const TOKEN = 'integration-test-token-0123456789';

export interface DataTier {
  readonly pg: PatroniLaunch;
  readonly redis: RedisClusterLaunch | undefined;
  /** The service's environment for these servers (names from SERVICE_ENV). */
  env(overrides?: Record<string, string>): Record<string, string>;
  /** A migrated app (buildApp + ready), closed by `stop()`. */
  app(overrides?: Record<string, string>): Promise<FastifyInstance>;
  /** Runs the migrations as the migration role (it owns the schema; the application role may not run DDL). */
  migrate(database?: string): Promise<void>;
  stop(): Promise<void>;
}

let objects: ReturnType<typeof synthObjects> | undefined;
const shippedObjects = () => (objects ??= synthObjects(loadEnvironment('dev')));

/**
 * `redisTls`: the Redis nodes speak TLS only (as `redis.tls` ships them) and the service gets the
 * CA file (REDIS_TLS_CA_FILE).
 */
export async function startDataTier(
  opts: { replicas?: number; redis?: boolean; redisTls?: boolean } = {},
): Promise<DataTier> {
  const [pg, redis] = await Promise.all([
    startPatroni(shippedObjects(), { members: 1 + (opts.replicas ?? 2) }),
    opts.redis === false ? Promise.resolve(undefined) : startRedisCluster(shippedObjects(), { tls: opts.redisTls }),
  ]);
  const apps: FastifyInstance[] = [];
  const addr = (e: { host: string; port: number }) => `${e.host}:${e.port}`;
  const env = (overrides: Record<string, string> = {}): Record<string, string> => ({
    POSTGRES_SERVER: addr(pg.primary),
    POSTGRES_READ_REPLICAS: pg.replicas.map(addr).join(','),
    POSTGRES_DB: pg.database,
    POSTGRES_USER: pg.user,
    POSTGRES_PASSWORD: pg.password,
    // As the migrate init container has them: `migrate` and `maintain-partitions` log in as the
    // migration role; a serving app does not use them.
    POSTGRES_MIGRATION_USER: pg.migration.user,
    POSTGRES_MIGRATION_PASSWORD: pg.migration.password,
    DB_POOL_TIMEOUT: '5',
    REDIS_CLUSTER_NODES: redis ? redis.nodes.map(addr).join(',') : '',
    REDIS_PASSWORD: redis?.passwords.app ?? '',
    CACHE_ENABLED: redis ? 'true' : 'false',
    ...(redis?.tls ? { REDIS_TLS_CA_FILE: redis.tls.caFile } : {}),
    CACHE_WARM_ON_START: 'false',
    MANAGEMENT_TOKEN: TOKEN,
    LOG_LEVEL: 'silent',
    ...overrides,
  });
  const runMigrations = async (database = pg.database) => {
    const client = new Client({ ...pg.clientConfig(undefined, 'migration'), database });
    await client.connect();
    try {
      await migrate(client);
    } finally {
      await client.end();
    }
  };
  return {
    pg,
    redis,
    env,
    migrate: runMigrations,
    app: async (overrides) => {
      const app = await buildApp(loadConfig(env(overrides)), {
        probeIntervalSeconds: 0.2,
        redisNatMap: redis?.natMap(),
      });
      apps.push(app);
      await app.ready();
      return app;
    },
    stop: async () => {
      await Promise.all(apps.map((a) => a.close().catch(() => undefined)));
      await Promise.all([pg.stop(), redis?.stop()]);
    },
  };
}

/** Polls `check` until it returns true (or throws after `timeoutMs`, naming `what`). */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
