import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { PROMETHEUS_FILES } from '../../constructs/monitoring/prometheus-config';
import type { Obj } from './objects';

/**
 * Writes the shipped `prometheus-config` ConfigMap's files (`files`, its data) into `dir` for a
 * Prometheus on loopback: the bytes as shipped, with only the API server address (`apiUrl`, a
 * FakeApiServer) added to each kubernetes_sd_configs entry and the kubelet job's ServiceAccount
 * token and CA pointed at stand-ins in `dir`. Returns the config file's path.
 */
export function writeShippedPrometheusFiles(files: Record<string, string>, dir: string, apiUrl: string): string {
  const shipped = parse(files[PROMETHEUS_FILES.config]) as { scrape_configs: Obj[] };
  for (const job of shipped.scrape_configs) {
    for (const sd of job.kubernetes_sd_configs ?? []) sd.api_server = apiUrl;
    if (job.authorization) job.authorization.credentials_file = join(dir, 'token');
    if (job.tls_config) job.tls_config.ca_file = join(dir, 'ca.crt');
  }
  writeFileSync(join(dir, 'token'), 'stand-in\n');
  writeFileSync(join(dir, 'ca.crt'), '');
  const config = join(dir, PROMETHEUS_FILES.config);
  writeFileSync(config, stringify(shipped));
  writeFileSync(join(dir, PROMETHEUS_FILES.alertRules), files[PROMETHEUS_FILES.alertRules]);
  writeFileSync(join(dir, PROMETHEUS_FILES.recordingRules), files[PROMETHEUS_FILES.recordingRules]);
  return config;
}
