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
  // synchronous_mode as in prod, so the local twin's failover drill proves no acknowledged write is lost.
  postgres: {
    synchronousReplicas: 1,
    // kind has no ReadWriteMany class for a posix repository and no bucket: no backups (the tests run
    // prod's pgBackRest files against a local directory instead).
    backup: { enabled: false },
    // Plaintext on the developers' kind cluster (production: false); staging and prod run TLS.
    tls: { enabled: false },
  },
  monitoring: {
    prometheus: { retention: '2d' },
    // One Alertmanager: no mesh to gossip over (prod and staging run two).
    alertmanager: { replicas: 1 },
    // No PagerDuty for dev: pages go to a webhook (the team's incident bot), tickets to the dev channel.
    alerting: {
      receivers: [
        { name: 'pager', type: 'webhook', secretName: 'alertmanager-pager' },
        { name: 'chat', type: 'slack', secretName: 'alertmanager-slack', channel: '#fastnext-dev' },
        { name: 'deadmans-switch', type: 'webhook', secretName: 'alertmanager-deadmans-switch', sendResolved: false },
      ],
    },
  },
};
