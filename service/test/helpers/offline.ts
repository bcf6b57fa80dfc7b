import { loadConfig, type ServiceConfig } from '../../src/config';

/** The management token of the unit tests' apps. */
export const TOKEN = 'unit-test-token-0123456789';
/** Nothing listens on port 1: every database and Redis call fails fast. */
export const CLOSED = '127.0.0.1:1';

/** The service's config with PostgreSQL and Redis pointed at a closed port (unit tests: no servers). */
export function offlineConfig(logLevel = 'silent', extra: Record<string, string> = {}): ServiceConfig {
  return loadConfig({
    ...extra,
    POSTGRES_SERVER: CLOSED,
    POSTGRES_READ_REPLICAS: CLOSED,
    POSTGRES_PASSWORD: 'x',
    DB_POOL_TIMEOUT: '1',
    REDIS_CLUSTER_NODES: CLOSED,
    CACHE_WARM_ON_START: 'false',
    MANAGEMENT_TOKEN: TOKEN,
    LOG_LEVEL: logLevel,
  });
}
