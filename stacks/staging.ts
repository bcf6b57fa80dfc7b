import type { EnvironmentOverrides } from './config';

/** staging: production's shape at a smaller scale, with TLS, to rehearse releases. */
export const staging: EnvironmentOverrides = {
  name: 'staging',
  labels: { 'fastnext.io/environment': 'staging' },
  // The same kind of cluster as prod, so a release is rehearsed on what it ships to.
  cluster: { profile: 'gke' },
  api: {
    autoscaling: { minReplicas: 2, maxReplicas: 6 },
  },
  edge: {
    hostnames: ['staging.fastnext.example.com'],
    tls: { secretName: 'edge-tls' },
  },
  postgres: {
    storage: { size: '10Gi' },
    backup: {
      enabled: true,
      repository: { type: 'gcs', bucket: 'fastnext-staging-pgbackrest' },
      credentialsSecret: 'postgres-backup-gcs',
      encryption: { keySecret: 'postgres-backup-encryption' },
    },
  },
  redis: {
    maxmemory: '512mb',
    resources: { requests: { cpu: '100m', memory: '640Mi' }, limits: { cpu: '500m', memory: '768Mi' } },
  },
};
