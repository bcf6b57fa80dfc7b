/** The four provisioned dashboards; each becomes its own ConfigMap. */
import type { MonitoredPlatform } from '../monitored';
import { edgeDashboard } from './edge';
import { overviewDashboard } from './overview';
import type { Dashboard } from './panels';
import { postgresDashboard } from './postgres';
import { redisDashboard } from './redis';

export { dashboardExpressions, renderDashboard, DATASOURCE_UID, type Dashboard } from './panels';

/** Dashboards by short name (the ConfigMap is `grafana-dashboard-<name>`, the file `<name>.json`). */
export function dashboards(config: MonitoredPlatform): Record<'overview' | 'edge' | 'postgres' | 'redis', Dashboard> {
  return {
    overview: overviewDashboard(config),
    edge: edgeDashboard(config),
    postgres: postgresDashboard(config),
    redis: redisDashboard(config),
  };
}
