/** The construct library: each tier's construct, its props and defaults, and the shared core. */
export * from './api/api-service';
export * from './edge/edge-proxy';
export { EDGE_PATHS, EDGE_PORTS, type NginxSettings, renderNginxConf } from './edge/nginx-conf';
export * from './postgres/patroni-cluster';
export { PATRONI_FILES, patroniConfigFiles, renderPatroniYml } from './postgres/patroni-files';
export * from './pgbouncer/pgbouncer-pool';
export { PGBOUNCER_FILES, pgbouncerConfigFiles, renderPgbouncerIni } from './pgbouncer/pgbouncer-files';
export * from './redis/redis-cluster';
export { parseRedisSize, REDIS_FILES, REDIS_PORT, redisConfigFiles, redisMemoryProblem } from './redis/files';
export * from './monitoring';
export * from './core/generated-secret';
export { podsOf, PROMETHEUS_COMPONENT, type PodPort, type ServiceEndpoint } from './core/network';
export type { PodOptions } from './core/pod';
export type { Resources } from './core/quantity';
export type { StorageProps } from './core/storage';
export type { AutoscalingProps } from './core/workload';
export { PART_OF, PRODUCTION_LABEL, selectorLabels } from './core/labels';
