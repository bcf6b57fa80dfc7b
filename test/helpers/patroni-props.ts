import type { PatroniClusterProps } from '../../constructs/postgres/patroni-cluster';

const small = { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } };

/** The least a PatroniCluster in a bare Testing chart needs: stand-in images, small pods, PgBouncer as its client. */
export const MINIMAL_PATRONI_PROPS = {
  image: 'pg:1',
  exporterImage: 'exp:1',
  storage: { size: '1Gi' },
  resources: small,
  exporterResources: small,
  clients: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'pgbouncer' } } }],
} satisfies PatroniClusterProps;
