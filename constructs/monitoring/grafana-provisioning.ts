/**
 * Grafana provisioning files: the Prometheus datasource and the file provider
 * that loads the dashboards mounted from one ConfigMap each.
 */
import { stringify } from 'yaml';
import type { EnvironmentConfig } from '../../stacks/config';
import { DATASOURCE_UID } from './dashboards/panels';
import { PROMETHEUS_PORT } from './prometheus-config';

/** Where the dashboard ConfigMaps are mounted (one projected volume, one `<name>.json` each). */
export const GRAFANA_DASHBOARDS_DIR = '/etc/grafana/dashboards';

/** provisioning/datasources/prometheus.yaml; `prometheusService` is the in-namespace Service name. */
export function renderGrafanaDatasources(config: EnvironmentConfig, prometheusService: string): string {
  return stringify({
    apiVersion: 1,
    datasources: [
      {
        name: 'Prometheus',
        type: 'prometheus',
        uid: DATASOURCE_UID,
        access: 'proxy',
        url: `http://${prometheusService}.${config.namespace}.svc:${PROMETHEUS_PORT}`,
        isDefault: true,
        editable: false,
        jsonData: { timeInterval: `${config.monitoring.prometheus.scrapeIntervalSeconds}s` },
      },
    ],
  });
}

/** provisioning/dashboards/fastnext.yaml */
export function renderGrafanaDashboardProvider(): string {
  return stringify({
    apiVersion: 1,
    providers: [
      {
        name: 'fastnext',
        orgId: 1,
        folder: 'FastNext',
        type: 'file',
        disableDeletion: true,
        allowUiUpdates: false,
        // Dashboards are code: edits in the UI would be lost on the next rollout anyway.
        updateIntervalSeconds: 60,
        options: { path: GRAFANA_DASHBOARDS_DIR, foldersFromFilesStructure: false },
      },
    ],
  });
}
