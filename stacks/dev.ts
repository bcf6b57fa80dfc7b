import type { EnvironmentOverrides } from './config';

/**
 * dev: one small copy of everything, for developers and the local twin. The kind profile
 * gives it small resources and volumes, the default StorageClass and a ClusterIP edge.
 */
export const dev: EnvironmentOverrides = {
  name: 'dev',
  production: false,
  labels: { 'fastnext.io/environment': 'dev' },
  cluster: { profile: 'kind' },
  api: {
    autoscaling: { minReplicas: 2, maxReplicas: 4 },
    cache: { warmOnStart: false },
  },
  edge: {
    autoscaling: { minReplicas: 1, maxReplicas: 2 },
  },
  monitoring: {
    prometheus: { retention: '2d' },
  },
};
