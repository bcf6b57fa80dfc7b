import type { EnvironmentOverrides } from './config';

/** dev: one small copy of everything, for developers and the local twin. */
export const dev: EnvironmentOverrides = {
  name: 'dev',
  production: false,
  labels: { 'fastnext.io/environment': 'dev' },
  api: {
    autoscaling: { minReplicas: 2, maxReplicas: 4 },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
    cache: { warmOnStart: false },
  },
  edge: {
    autoscaling: { minReplicas: 1, maxReplicas: 2 },
    serviceType: 'ClusterIP',
  },
  postgres: {
    storage: { size: '2Gi' },
    resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
  },
  redis: {
    maxmemory: '128mb',
    storage: { size: '1Gi' },
    resources: { requests: { cpu: '50m', memory: '192Mi' }, limits: { cpu: '250m', memory: '256Mi' } },
  },
  monitoring: {
    prometheus: { retention: '2d', storage: { size: '5Gi' } },
  },
};
