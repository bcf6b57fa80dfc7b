/** Redis Cluster: keyspace hit ratio, memory, evictions, cluster state and replicas. */
import type { MonitoredPlatform } from '../monitored';
import { hitRatio } from '../alert-rules';
import { dashboard, type Dashboard, stat, timeseries } from './panels';

export function redisDashboard(config: MonitoredPlatform): Dashboard {
  const nodes = config.redis.masters * (1 + config.redis.replicasPerMaster);
  return dashboard('fastnext-redis', 'FastNext / Redis Cluster', [
    timeseries(
      'Keyspace hit ratio',
      'percentunit',
      { 'hit ratio': hitRatio('redis_keyspace_hits_total', 'redis_keyspace_misses_total') },
      { min: 0, max: 1 },
    ),
    timeseries('Memory used / maxmemory', 'bytes', {
      '{{pod}} used': 'max by (pod) (redis_memory_used_bytes)',
      maxmemory: 'max(redis_memory_max_bytes)',
    }),
    timeseries('Evicted and expired keys per second', 'ops', {
      evicted: 'sum(rate(redis_evicted_keys_total[5m]))',
      expired: 'sum(rate(redis_expired_keys_total[5m]))',
    }),
    stat('Cluster state (1 = ok)', 'short', { cluster_state: 'min(redis_cluster_state)' }),
    stat(
      'Nodes up',
      'short',
      { up: 'sum(redis_up)' },
      { description: `Expected: ${nodes} (${config.redis.masters} masters x ${1 + config.redis.replicasPerMaster}).` },
    ),
    stat('Slots ok / assigned', 'short', {
      ok: 'min(redis_cluster_slots_ok)',
      assigned: 'min(redis_cluster_slots_assigned)',
    }),
    timeseries('Replicas per master', 'short', {
      '{{pod}}': 'redis_connected_slaves and on (instance) redis_instance_info{role="master"}',
    }),
    timeseries('Commands per second', 'ops', { '{{pod}}': 'sum by (pod) (rate(redis_commands_processed_total[5m]))' }),
    timeseries('Connected clients', 'short', { '{{pod}}': 'sum by (pod) (redis_connected_clients)' }),
  ]);
}
