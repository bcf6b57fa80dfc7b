/**
 * Grafana provisioning files: the Prometheus datasource and the file provider
 * that loads the dashboards mounted from one ConfigMap each.
 */
import { stringify } from 'yaml';
import * as core from '../core';
import { DATASOURCE_UID } from './dashboards/panels';

/** Where the dashboard ConfigMaps are mounted (one projected volume, one `<name>.json` each). */
export const GRAFANA_DASHBOARDS_DIR = '/etc/grafana/dashboards';

/** provisioning/datasources/prometheus.yaml: the Prometheus at `prometheus` (host and port), scraping every `scrapeIntervalSeconds`. */
export function renderGrafanaDatasources(prometheus: core.ServiceEndpoint, scrapeIntervalSeconds: number): string {
  return stringify({
    apiVersion: 1,
    datasources: [
      {
        name: 'Prometheus',
        type: 'prometheus',
        uid: DATASOURCE_UID,
        access: 'proxy',
        url: `http://${prometheus.host}:${prometheus.port}`,
        isDefault: true,
        editable: false,
        jsonData: { timeInterval: `${scrapeIntervalSeconds}s` },
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
