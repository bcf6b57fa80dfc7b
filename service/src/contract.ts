/**
 * The contract between the bundled API service and the platform that runs it.
 *
 * The constructs import this module (never re-type these values), so a probe
 * can never point at a path the service does not serve, and an env var the
 * Deployment sets is always one the service reads.
 */

/** The service's Redis ACL user (commands, keys, channels): the platform renders its ACL from it. */
export { REDIS_APP_ACL, type RedisAclUser, type AclCommand } from './cache/acl';

/** TCP ports the service listens on inside its container. */
export const SERVICE_PORTS = {
  /** Public HTTP API (and health endpoints). */
  http: 8000,
  /** Prometheus metrics, on a port of its own so the edge never exposes it. */
  metrics: 9464,
} as const;

/**
 * The request id header: the edge sets it (nginx `$request_id`, also in its
 * access log) and the service logs it as `reqId`, so one request can be followed
 * from edge to pod.
 */
export const REQUEST_ID_HEADER = 'X-Request-ID';

/**
 * Input bounds of the API. The edge derives its `client_max_body_size` from
 * `bodyBytes`, so a body the API would refuse is refused at the edge with the same
 * JSON error, and one the edge passes is never refused by size at the pod.
 */
export const SERVICE_LIMITS = {
  /** Largest request body, in bytes (Fastify `bodyLimit`; nginx `client_max_body_size`). */
  bodyBytes: 64 * 1024,
  /** Deepest nesting of a JSON field (`settings`, `details`), the field itself being level 1. */
  jsonDepth: 32,
  /** Largest JSON field, serialized, in bytes. */
  jsonBytes: 16 * 1024,
} as const;

/** URL prefix of every API route. */
export const API_PREFIX = '/api/v1';

/** Health routes as the service registers them, under API_PREFIX. */
export const HEALTH_ROUTES = {
  liveness: '/scaling/health/liveness',
  readiness: '/scaling/health/readiness',
  deep: '/scaling/health/deep',
} as const;

/** The OpenAPI document of the API (unauthenticated), under API_PREFIX. */
export const OPENAPI_ROUTE = '/openapi.json';

/** Fault-injection routes (bearer token), registered only with FAULT_INJECTION=true. */
export const FAULT_ROUTES = {
  /** POST `{ "seconds": n }`: answers 202, then busy-loops the event loop for n seconds. */
  blockEventLoop: '/scaling/faults/block-event-loop',
} as const;

/** HTTP paths the platform points probes and scrapers at. */
export const SERVICE_PATHS = {
  /** Liveness: the process answers; never checks dependencies. */
  liveness: `${API_PREFIX}${HEALTH_ROUTES.liveness}`,
  /** Readiness: not draining and some data source (cache, replica, primary) serves reads. */
  readiness: `${API_PREFIX}${HEALTH_ROUTES.readiness}`,
  /** Startup: same handler as liveness, with a longer failure budget. */
  startup: `${API_PREFIX}${HEALTH_ROUTES.liveness}`,
  /** Every component with status and latency (for humans and the local twin). */
  deep: `${API_PREFIX}${HEALTH_ROUTES.deep}`,
  /** The OpenAPI document (JSON), generated from the route schemas; needs no token. */
  openapi: `${API_PREFIX}${OPENAPI_ROUTE}`,
  /** Prometheus exposition, served on SERVICE_PORTS.metrics. */
  metrics: '/metrics',
} as const;

/** Names of the environment variables the service reads. */
export const SERVICE_ENV = {
  port: 'PORT',
  metricsPort: 'METRICS_PORT',
  logLevel: 'LOG_LEVEL',
  /** Primary, `host:port`. */
  postgresServer: 'POSTGRES_SERVER',
  /** Comma-separated `host:port` list of read replicas (may be empty). */
  postgresReadReplicas: 'POSTGRES_READ_REPLICAS',
  postgresDb: 'POSTGRES_DB',
  postgresUser: 'POSTGRES_USER',
  postgresPassword: 'POSTGRES_PASSWORD',
  /** File holding the password (mounted Secret); wins over POSTGRES_PASSWORD. */
  postgresPasswordFile: 'POSTGRES_PASSWORD_FILE',
  /**
   * The application's second login (rotation, docs/postgres-security.md#rotation): its name, the file
   * holding its password, and the file naming the login in use (POSTGRES_USER or this one; absent:
   * POSTGRES_USER). The service reads the files for each new connection: a flip needs no restart.
   */
  postgresAlternateUser: 'POSTGRES_ALTERNATE_USER',
  postgresAlternatePasswordFile: 'POSTGRES_ALTERNATE_PASSWORD_FILE',
  postgresActiveLoginFile: 'POSTGRES_ACTIVE_LOGIN_FILE',
  /**
   * The migration role (it owns the schema and runs DDL), set only where migrations run (the migrate
   * init container, the partition-maintenance CronJob): `migrate` and `maintain-partitions` log in as
   * it; unset, they use POSTGRES_USER.
   */
  postgresMigrationUser: 'POSTGRES_MIGRATION_USER',
  postgresMigrationPassword: 'POSTGRES_MIGRATION_PASSWORD',
  /** File holding the migration role's password (mounted Secret); wins over POSTGRES_MIGRATION_PASSWORD. */
  postgresMigrationPasswordFile: 'POSTGRES_MIGRATION_PASSWORD_FILE',
  /** `verify-full` (TLS, the server's certificate checked against POSTGRES_SSL_ROOT_CERT and its host name) or `disable`. */
  postgresSslMode: 'POSTGRES_SSL_MODE',
  /** File holding the CA (PEM) the servers' certificates chain to (a mounted Secret's ca.crt). */
  postgresSslRootCert: 'POSTGRES_SSL_ROOT_CERT',
  dbPoolSize: 'DB_POOL_SIZE',
  dbMaxOverflow: 'DB_MAX_OVERFLOW',
  dbPoolTimeout: 'DB_POOL_TIMEOUT',
  dbPoolRecycle: 'DB_POOL_RECYCLE',
  /** Replica lag (seconds) beyond which a replica is skipped for reads. */
  dbReplicaMaxLag: 'DB_REPLICA_MAX_LAG',
  /** Comma-separated `host:port` seed list of the Redis Cluster. */
  redisClusterNodes: 'REDIS_CLUSTER_NODES',
  /** The Redis ACL user the service authenticates as (default: REDIS_APP_ACL.user, `app`). */
  redisUsername: 'REDIS_USERNAME',
  redisPassword: 'REDIS_PASSWORD',
  redisPasswordFile: 'REDIS_PASSWORD_FILE',
  /**
   * File holding the CA (PEM) the Redis nodes' certificates chain to (a mounted Secret's ca.crt): set, the
   * client speaks TLS to every node and checks its certificate and host name; unset, plaintext.
   */
  redisTlsCaFile: 'REDIS_TLS_CA_FILE',
  cacheEnabled: 'CACHE_ENABLED',
  cacheDefaultTtl: 'CACHE_DEFAULT_TTL',
  cacheWarmOnStart: 'CACHE_WARM_ON_START',
  /** Seconds an entry lives in the in-process cache tier; 0 turns the tier off. */
  cacheLocalTtl: 'CACHE_LOCAL_TTL_SECONDS',
  /** Entries of the in-process cache tier. */
  cacheLocalMaxEntries: 'CACHE_LOCAL_MAX_ENTRIES',
  /** Bearer token for management endpoints. */
  managementToken: 'MANAGEMENT_TOKEN',
  managementTokenFile: 'MANAGEMENT_TOKEN_FILE',
  /** Seconds readiness reports failure before the server stops accepting (preStop drain). */
  shutdownDrainSeconds: 'SHUTDOWN_DRAIN_SECONDS',
  /**
   * `true` registers the fault-injection routes (the twin's drills block a pod's event loop with
   * them). Never set by a production environment: the environment config refuses it.
   */
  faultInjection: 'FAULT_INJECTION',
} as const;

/** Subcommands of the service entry point (`serve` is the default). */
export const SERVICE_SUBCOMMANDS = {
  serve: 'serve',
  /** Run migrations (advisory-locked, idempotent) and exit. */
  migrate: 'migrate',
  /** Create the next months' activity_logs partitions and exit. */
  maintainPartitions: 'maintain-partitions',
} as const;
export type ServiceSubcommand = (typeof SERVICE_SUBCOMMANDS)[keyof typeof SERVICE_SUBCOMMANDS];

const ENTRYPOINT = ['node', 'dist/server.js'] as const;

/** Commands the platform runs: the container, its init container and the partition CronJob. */
export const SERVICE_COMMANDS = {
  /** Entry point inside the image. */
  entrypoint: ENTRYPOINT,
  migrate: [...ENTRYPOINT, SERVICE_SUBCOMMANDS.migrate],
  maintainPartitions: [...ENTRYPOINT, SERVICE_SUBCOMMANDS.maintainPartitions],
} as const;

/**
 * Statement timeout of the service's database sessions. node-postgres sends it as a startup
 * parameter, which PgBouncer drops (transaction pooling keeps no session settings), so the
 * platform also sets it as the application role's default on the server (post-bootstrap.sh).
 */
export const DB_STATEMENT_TIMEOUT_MS = 15_000;

/** Metric names the service exports; rules and dashboards must use these. */
export const SERVICE_METRICS = {
  /** Histogram, labels: method, route, status_code. */
  httpRequestDuration: 'http_request_duration_seconds',
  /** Counter, labels: cache ("hit" | "miss") kept as two counters below. */
  cacheHits: 'fastnext_cache_hits_total',
  cacheMisses: 'fastnext_cache_misses_total',
  /** Counter: the hits (already in cacheHits) answered by the in-process tier, without a Redis round trip. */
  cacheLocalHits: 'fastnext_cache_local_hits_total',
  /** Counter: cache operations that failed or timed out and fell back to the database (Redis degraded). */
  cacheErrors: 'fastnext_cache_errors_total',
  /** Gauges, label: pool ("primary" | "replica-N"). */
  dbPoolTotal: 'fastnext_db_pool_connections',
  dbPoolIdle: 'fastnext_db_pool_idle_connections',
  dbPoolWaiting: 'fastnext_db_pool_waiting_clients',
  /** Gauge, label: replica. */
  replicaLagSeconds: 'fastnext_db_replica_lag_seconds',
  /** Counter, labels: target ("primary" | "replica"). */
  dbQueries: 'fastnext_db_queries_total',
} as const;

/** Seconds the service keeps answering after SIGTERM while readiness fails (default of SHUTDOWN_DRAIN_SECONDS). */
export const DEFAULT_DRAIN_SECONDS = 10;
