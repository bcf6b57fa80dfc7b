/**
 * promtool proofs on the shipped bytes: `check config` on prometheus.yml (with the rule
 * files beside it, as the ConfigMap mounts them), `check rules`, and `test rules` with
 * the unit tests in test/fixtures/promtool/rules.test.yml (every alert fires and stays quiet).
 */
import { execFileSync, spawnSync } from 'child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parse } from 'yaml';
import { shippedAlertRules } from '../constructs/monitoring/alert-rules';
import { WATCHDOG } from '../constructs/monitoring/health-alerts';
import { PROMETHEUS_FILES, SERVICE_ACCOUNT_DIR } from '../constructs/monitoring/prometheus-config';
import type { EnvironmentConfig } from '../stacks/config';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { find, type Obj } from './helpers/objects';

const PROMTOOL = join(__dirname, '..', '.cache', 'promtool', 'usr', 'bin', 'promtool');
const FIXTURE = join(__dirname, 'fixtures', 'promtool', 'rules.test.yml');

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/**
 * Writes the config directory exactly as the prometheus-config ConfigMap mounts it: the synthesized
 * ConfigMap's bytes. The kubelet job reads the pod's ServiceAccount token and CA, which promtool
 * checks exist: that mount path alone is pointed at stand-in files.
 */
function configDir(config: EnvironmentConfig): string {
  const dir = mkdtempSync(join(tmpdir(), 'promtool-'));
  dirs.push(dir);
  const files = find(synthObjects(config) as Obj[], 'ConfigMap', 'prometheus-config').data as Record<string, string>;
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, name), name === PROMETHEUS_FILES.config ? text.split(SERVICE_ACCOUNT_DIR).join(dir) : text);
  }
  writeFileSync(join(dir, 'token'), 'stand-in token\n');
  writeFileSync(join(dir, 'ca.crt'), '');
  return dir;
}

function promtool(cwd: string, ...args: string[]) {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('promtool is the 2.x build that parses kubernetes_sd_configs', () => {
  expect(execFileSync(PROMTOOL, ['--version'], { encoding: 'utf8' })).toMatch(/promtool, version 2\.5\d/);
});

describe.each(environmentNames())('environment %s', (name) => {
  const config = loadEnvironment(name);

  test('promtool check config accepts prometheus.yml and finds both rule files', () => {
    const dir = configDir(config);
    const r = promtool(dir, 'check', 'config', PROMETHEUS_FILES.config);
    expect(r.output).toContain('SUCCESS: 2 rule files found');
    expect(r.output).toContain('is valid prometheus config file syntax');
    expect(r.status).toBe(0);
  });

  test('promtool check rules accepts the alert and recording rules', () => {
    const dir = configDir(config);
    const r = promtool(dir, 'check', 'rules', PROMETHEUS_FILES.recordingRules, PROMETHEUS_FILES.alertRules);
    expect(r.output).toContain(`SUCCESS: ${shippedAlertRules(config).length} rules found`);
    expect(r.status).toBe(0);
  });
});

describe('promtool test rules (prod rules)', () => {
  const prod = loadEnvironment('prod');
  const fixture = parse(readFileSync(FIXTURE, 'utf8')) as {
    tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const cases = fixture.tests.flatMap((t) => t.alert_rule_test);

  test('the fixture assumes the prod bounds it was written for', () => {
    // GIVEN the unit tests count 20 API and 10 edge pods, 2 PostgreSQL replicas, 1 Redis replica per master
    expect(prod.api.autoscaling.maxReplicas).toBe(20);
    expect(prod.edge.autoscaling.maxReplicas).toBe(10);
    expect(prod.postgres.replicas).toBe(2);
    expect(prod.redis.replicasPerMaster).toBe(1);
  });

  test.each(shippedAlertRules(prod).map((r) => r.alert))('%s has a firing and a not-firing unit test', (alert) => {
    const mine = cases.filter((c) => c.alertname === alert);
    expect(mine.some((c) => c.exp_alerts.length > 0)).toBe(true);
    // The Watchdog always fires: that is its point.
    if (alert !== WATCHDOG) expect(mine.some((c) => c.exp_alerts.length === 0)).toBe(true);
  });

  test('every unit test passes on the shipped rules', () => {
    const dir = configDir(prod);
    copyFileSync(FIXTURE, join(dir, 'rules.test.yml'));
    const r = promtool(dir, 'test', 'rules', 'rules.test.yml');
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  test('fails when a threshold changes under the unit tests (apiErrorRatio 0.03)', () => {
    // GIVEN rules rendered with a 3 % error threshold, the 2 % case must no longer fire
    const dir = configDir(loadEnvironment('prod', { monitoring: { alerts: { apiErrorRatio: 0.03 } } }));
    copyFileSync(FIXTURE, join(dir, 'rules.test.yml'));
    const r = promtool(dir, 'test', 'rules', 'rules.test.yml');
    expect(r.status).toBe(1);
    expect(r.output).toContain('alertname: ApiErrorRatioHigh, time: 10m');
  });
});
