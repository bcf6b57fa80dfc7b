/**
 * The policy stage as users meet it: opt-out annotations, the three output
 * formats, `npm run validate` exit codes, and zero findings on every shipped
 * environment.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { manifestFileName, toYaml } from '../stacks/manifests';
import { type KubeObject, synthObjects } from '../stacks/synth';
import { main as validate } from '../tools/manifests/validate';
import { CHECKS, runPolicy } from '../tools/manifests/policy/engine';
import { formatHuman, formatJson, formatSarif } from '../tools/manifests/policy/format';
import { goodObjects, pick } from './fixtures/policy/baseline';

function withoutLimits(): KubeObject[] {
  const objects = goodObjects();
  delete pick(objects, 'Deployment', 'web').spec.template.spec.containers[0].resources.limits;
  return objects;
}

describe('opt-out annotations', () => {
  it('skip one check on one object and are listed with their reason', () => {
    // GIVEN web has no limits and opts out of exactly that check
    const objects = withoutLimits();
    pick(objects, 'Deployment', 'web').metadata.annotations = {
      'fastnext.io/policy-skip.container-resources': 'load test rig, unbounded on purpose',
    };
    // WHEN the policy runs
    const report = runPolicy(objects);
    // THEN there is no finding, and the opt-out is reported
    expect(report.findings).toEqual([]);
    expect(report.optOuts).toEqual([
      {
        check: 'container-resources',
        object: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' },
        reason: 'load test rig, unbounded on purpose',
      },
    ]);
    expect(formatHuman([{ name: 'x', report }])).toContain(
      'opt-outs:\n    Deployment shop/web skips container-resources: "load test rig, unbounded on purpose"',
    );
  });

  it('fails when an opt-out gives no reason', () => {
    const objects = withoutLimits();
    pick(objects, 'Deployment', 'web').metadata.annotations = { 'fastnext.io/policy-skip.container-resources': ' ' };
    const report = runPolicy(objects);
    expect(report.findings.map((f) => `${f.check}: ${f.message}`)).toEqual([
      'policy-skip-valid: opt-out gives no reason',
      "container-resources: container 'web' has no limits.cpu, limits.memory",
    ]);
    expect(report.optOuts).toEqual([]);
  });

  it('fails when an opt-out names an unknown check', () => {
    const objects = goodObjects();
    pick(objects, 'Deployment', 'web').metadata.annotations = { 'fastnext.io/policy-skip.container-resource': 'typo' };
    expect(runPolicy(objects).findings.map((f) => `${f.check}: ${f.message} at ${f.path}`)).toEqual([
      `policy-skip-valid: opt-out names unknown check 'container-resource' at metadata.annotations["fastnext.io/policy-skip.container-resource"]`,
    ]);
  });
});

describe('report formats', () => {
  const report = runPolicy(withoutLimits());

  it('human output groups findings by object and shows each fix once', () => {
    expect(formatHuman([{ name: 'shop', report }])).toBe(
      [
        `policy shop: 1 error, 0 warnings in 15 objects (${CHECKS.length + 1} checks, 0 opt-outs)`,
        '  Deployment shop/web',
        "    error   container-resources: container 'web' has no limits.cpu, limits.memory (at spec.template.spec.containers[name=web].resources)",
        `            fix: ${CHECKS[0].fix}`,
        '',
      ].join('\n'),
    );
  });

  it('JSON output lists checks, findings and counts per environment', () => {
    const json = JSON.parse(formatJson([{ name: 'shop', report }]));
    expect(json.checks.map((c: { id: string }) => c.id)).toEqual([...CHECKS.map((c) => c.id), 'policy-skip-valid']);
    expect(json.environments[0]).toMatchObject({ name: 'shop', errors: 1, warnings: 0, objects: 15 });
    expect(json.environments[0].findings[0]).toMatchObject({
      check: 'container-resources',
      object: { kind: 'Deployment', name: 'web' },
    });
  });

  it('SARIF output has one rule per check and a located result per finding', () => {
    const sarif = JSON.parse(formatSarif([{ name: 'shop', report, artifactUri: 'stacks/shop.ts' }]));
    expect(sarif.version).toBe('2.1.0');
    const run = sarif.runs[0];
    expect(run.tool.driver.rules).toHaveLength(CHECKS.length + 1);
    expect(run.results).toEqual([
      expect.objectContaining({
        ruleId: 'container-resources',
        ruleIndex: 0,
        level: 'error',
        locations: [
          expect.objectContaining({
            physicalLocation: { artifactLocation: { uri: 'stacks/shop.ts' }, region: { startLine: 1 } },
          }),
        ],
      }),
    ]);
    expect(run.results[0].message.text).toMatch(
      /^shop: Deployment shop\/web: container 'web' has no limits.cpu, limits.memory/,
    );
  });
});

describe('npm run validate', () => {
  let dir: string;
  const write = (objects: KubeObject[]) => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir);
    objects.forEach((o, i) => fs.writeFileSync(path.join(dir, manifestFileName(i, o)), toYaml(o)));
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'validate-'));
    jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0 on a compliant directory and writes SARIF with --output', () => {
    write(goodObjects());
    const out = path.join(dir, 'policy.sarif');
    expect(validate(['--dir', dir, '--format', 'sarif', '--output', out])).toBe(0);
    expect(JSON.parse(fs.readFileSync(out, 'utf8')).runs[0].results).toEqual([]);
  });

  it('fails when a container has no limits (exit 1)', () => {
    write(withoutLimits());
    expect(validate(['--dir', dir])).toBe(1);
    const printed = (process.stdout.write as jest.Mock).mock.calls.map((c) => String(c[0])).join('');
    expect(printed).toContain("error   container-resources: container 'web' has no limits.cpu, limits.memory");
  });

  it('fails when a --dir marked --production has an HPA minimum of 1', () => {
    const objects = goodObjects();
    pick(objects, 'HorizontalPodAutoscaler', 'web').spec.minReplicas = 1;
    write(objects);
    expect(validate(['--dir', dir])).toBe(0);
    expect(validate(['--dir', dir, '--production'])).toBe(1);
  });

  it('fails when --format is unknown (exit 2)', () => {
    expect(validate(['--dir', dir, '--format', 'xml'])).toBe(2);
    expect(console.error).toHaveBeenCalledWith("validate: --format 'xml' is not one of human, json, sarif");
  });
});

describe('docs/ci.md', () => {
  it('documents every check with its severity', () => {
    const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'ci.md'), 'utf8');
    for (const c of CHECKS) expect(doc).toMatch(new RegExp(`\\| \`${c.id}\`\\s*\\| ${c.severity}\\s*\\|`));
  });
});

describe('shipped environments', () => {
  it.each(environmentNames())('%s has zero policy findings', (name) => {
    const config = loadEnvironment(name);
    const report = runPolicy(synthObjects(config), { production: config.production });
    expect(report.findings.map((f) => `${f.check}: ${f.object.kind} ${f.object.name}: ${f.message}`)).toEqual([]);
  });
});
