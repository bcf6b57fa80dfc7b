/** Redis Cluster: keyspace hit ratio, memory, evictions, cluster state and replicas. */
import type { MonitoredPlatform } from '../monitored';
import { hitRatio } from '../alert-rules';
import { dashboard, type Dashboard } from './panels';

export function redisDashboard(config: MonitoredPlatform): Dashboard {
  const nodes = config.redis.masters * (1 + config.redis.replicasPerMaster);
  return dashboard('fastnext-redis', 'FastNext / Redis Cluster', [
    {
      title: 'Keyspace hit ratio',
      unit: 'percentunit',
      min: 0,
      max: 1,
      targets: [
        {
          expr: hitRatio('redis_keyspace_hits_total', 'redis_keyspace_misses_total'),
          legendFormat: 'hit ratio',
        },
      ],
    },
    {
      title: 'Memory used / maxmemory',
      unit: 'bytes',
      targets: [
        { expr: 'max by (pod) (redis_memory_used_bytes)', legendFormat: '{{pod}} used' },
        { expr: 'max(redis_memory_max_bytes)', legendFormat: 'maxmemory' },
      ],
    },
    {
      title: 'Evicted and expired keys per second',
      unit: 'ops',
      targets: [
        { expr: 'sum(rate(redis_evicted_keys_total[5m]))', legendFormat: 'evicted' },
        { expr: 'sum(rate(redis_expired_keys_total[5m]))', legendFormat: 'expired' },
      ],
    },
    {
      title: 'Cluster state (1 = ok)',
      type: 'stat',
      unit: 'short',
      targets: [{ expr: 'min(redis_cluster_state)', legendFormat: 'cluster_state' }],
    },
    {
      title: 'Nodes up',
      type: 'stat',
      unit: 'short',
      description: `Expected: ${nodes} (${config.redis.masters} masters x ${1 + config.redis.replicasPerMaster}).`,
      targets: [{ expr: 'sum(redis_up)', legendFormat: 'up' }],
    },
    {
      title: 'Slots ok / assigned',
      type: 'stat',
      unit: 'short',
      targets: [
        { expr: 'min(redis_cluster_slots_ok)', legendFormat: 'ok' },
        { expr: 'min(redis_cluster_slots_assigned)', legendFormat: 'assigned' },
      ],
    },
    {
      title: 'Replicas per master',
      unit: 'short',
      targets: [
        {
          expr: 'redis_connected_slaves and on (instance) redis_instance_info{role="master"}',
          legendFormat: '{{pod}}',
        },
      ],
    },
    {
      title: 'Commands per second',
      unit: 'ops',
      targets: [{ expr: 'sum by (pod) (rate(redis_commands_processed_total[5m]))', legendFormat: '{{pod}}' }],
    },
    {
      title: 'Connected clients',
      unit: 'short',
      targets: [{ expr: 'sum by (pod) (redis_connected_clients)', legendFormat: '{{pod}}' }],
    },
  ]);
}
