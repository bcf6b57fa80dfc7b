/**
 * The Prometheus container as synthesized, on the real binary of the image's
 * version (2.53.3, Debian 13's build): its args (paths and listen address
 * substituted), its probe paths, and the /-/reload the config-reload sidecar
 * calls when the ConfigMap changes.
 */
import { writeFileSync } from 'fs';
import { join } from 'path';
import { renderAlertRules } from '../constructs/monitoring/alert-rules';
import { PROMETHEUS_CONFIG_DIR, PROMETHEUS_FILES } from '../constructs/monitoring/prometheus-config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { FakeApiServer } from '../tools/runtime/metrics-check/fake-apiserver';
import {
  freePort,
  SHIPPED_VERSION_PROMETHEUS,
  startProcess,
  stopAll,
  tempDir,
  waitFor,
} from '../tools/runtime/metrics-check/servers';
import { type Obj, find } from './helpers/objects';
import { writeShippedPrometheusFiles } from './helpers/prometheus-files';

jest.setTimeout(60000);

const config = loadEnvironment('prod');
const sts = find(synthObjects(config) as Obj[], 'StatefulSet', 'prometheus');
const container = sts.spec.template.spec.containers.find((c: Obj) => c.name === 'prometheus');
let api: FakeApiServer;
let base = '';
let dir = '';

beforeAll(async () => {
  api = new FakeApiServer(config.namespace, { pods: [], endpoints: [], services: [] });
  const apiUrl = await api.listen();
  dir = tempDir('prom-runtime-');
  // The ConfigMap's bytes; the API server address and the kubelet job's ServiceAccount files substituted.
  const files = find(synthObjects(config) as Obj[], 'ConfigMap', 'prometheus-config').data as Record<string, string>;
  writeShippedPrometheusFiles(files, dir, apiUrl);
  const port = await freePort();
  // GIVEN the container's args with only its mount paths and listen address substituted.
  const args = (container.args as string[]).map((a) =>
    a
      .replace(PROMETHEUS_CONFIG_DIR, dir)
      .replace('--storage.tsdb.path=/prometheus', `--storage.tsdb.path=${tempDir('prom-runtime-data-')}`)
      .replace(/^--web\.listen-address=:\d+$/, `--web.listen-address=127.0.0.1:${port}`),
  );
  expect(args.join(' ')).not.toContain(PROMETHEUS_CONFIG_DIR);
  startProcess('prometheus', SHIPPED_VERSION_PROMETHEUS, args);
  base = `http://127.0.0.1:${port}`;
  await waitFor('prometheus ready', async () => (await fetch(`${base}/-/ready`)).ok, 30000);
});

afterAll(async () => {
  stopAll();
  await api?.close();
});

test('the probe paths of the container answer 200 on the real binary', async () => {
  const paths = ['startupProbe', 'readinessProbe', 'livenessProbe'].map((p) => container[p].httpGet.path as string);
  expect(paths).toEqual(['/-/ready', '/-/ready', '/-/healthy']);
  for (const path of paths) expect([path, (await fetch(`${base}${path}`)).status]).toEqual([path, 200]);
});

test('the args take effect: retention from the config, config file from the ConfigMap mount', async () => {
  const flags = ((await (await fetch(`${base}/api/v1/status/flags`)).json()) as { data: Record<string, string> }).data;
  expect(flags['storage.tsdb.retention.time']).toBe(config.monitoring.prometheus.retention);
  expect(flags['web.enable-lifecycle']).toBe('true');
  expect(flags['config.file']).toBe(join(dir, PROMETHEUS_FILES.config));
});

test('POST /-/reload (what the config-reload sidecar sends) picks up changed rule files', async () => {
  const threshold = async () => {
    const r = (await (await fetch(`${base}/api/v1/rules?type=alert`)).json()) as {
      data: { groups: { rules: { name: string; query: string }[] }[] };
    };
    return r.data.groups.flatMap((g) => g.rules).find((x) => x.name === 'ApiErrorRatioHigh')?.query;
  };
  expect(await threshold()).toBe('fastnext:http_errors:ratio5m > 0.01');
  // WHEN the ConfigMap changes (a new threshold) and the sidecar posts the reload
  const changed = loadEnvironment('prod', { monitoring: { alerts: { apiErrorRatio: 0.02 } } });
  writeFileSync(join(dir, PROMETHEUS_FILES.alertRules), renderAlertRules(changed));
  const reload = sts.spec.template.spec.containers.find((c: Obj) => c.name === 'config-reload');
  const webhook = new URL((reload.args as string[]).find((a) => a.startsWith('--webhook-url='))!.split('=')[1]);
  expect([webhook.hostname, webhook.pathname]).toEqual(['127.0.0.1', '/-/reload']);
  expect((await fetch(`${base}${webhook.pathname}`, { method: 'POST' })).status).toBe(200);
  // THEN the running Prometheus evaluates the new threshold
  expect(await threshold()).toBe('fastnext:http_errors:ratio5m > 0.02');
});
