import type { EnvironmentOverrides } from './config';

/** prod: API HPA 3–20 at CPU 70 % / memory 80 %, TLS, synchronous commit to one replica. */
export const prod: EnvironmentOverrides = {
  name: 'prod',
  labels: { 'fastnext.io/environment': 'prod' },
  // StorageClass standard-rwo and the edge's load balancer come from the profile (docs/clusters.md).
  cluster: { profile: 'gke' },
  api: {
    autoscaling: { minReplicas: 3, maxReplicas: 20, cpuTargetPercent: 70, memoryTargetPercent: 80 },
  },
  edge: {
    autoscaling: { minReplicas: 3, maxReplicas: 10 },
    hostnames: ['fastnext.example.com', 'api.fastnext.example.com'],
    tls: { secretName: 'edge-tls' },
  },
  postgres: {
    synchronousReplicas: 1,
    synchronousCommit: 'on',
    storage: { size: '100Gi' },
    // pgBackRest to a GCS bucket (key in a Secret), encrypted; full Sundays, differentials the other nights.
    backup: {
      enabled: true,
      repository: { type: 'gcs', bucket: 'fastnext-prod-pgbackrest' },
      credentialsSecret: 'postgres-backup-gcs',
      encryption: { keySecret: 'postgres-backup-encryption' },
      retention: { full: 4 },
    },
  },
  redis: {
    maxmemory: '2gb',
  },
};
