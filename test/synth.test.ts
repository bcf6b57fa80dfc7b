import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { APP_COMMANDS } from '../constructs/redis/acl';
import { main } from '../stacks/cdk8s-app';
import { ENVIRONMENTS } from '../stacks/environments';
import { readManifestDir } from '../stacks/manifests';
import { synthObjects } from '../stacks/synth';
import { loadEnvironment } from '../stacks/environments';
import { fillSections, generatedSections, README } from '../tools/manifests/readme';

const ROOT = path.join(__dirname, '..');

function listTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const env of fs.readdirSync(dir).sort()) {
    for (const f of fs.readdirSync(path.join(dir, env)).sort()) {
      out[`${env}/${f}`] = fs.readFileSync(path.join(dir, env, f), 'utf8');
    }
  }
  return out;
}

describe('synth', () => {
  let out: string;
  let errors: string[];
  let logs: string[];
  beforeEach(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-dist-'));
    errors = [];
    logs = [];
    jest.spyOn(console, 'error').mockImplementation((m: string) => void errors.push(m));
    jest.spyOn(console, 'log').mockImplementation((m: string) => void logs.push(m));
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(out, { recursive: true, force: true });
  });

  test('writes every environment, one file per object, Namespace first, and reads back the same objects', () => {
    expect(main(['--out', out])).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(Object.keys(ENVIRONMENTS).sort());
    for (const env of Object.keys(ENVIRONMENTS)) {
      const files = fs.readdirSync(path.join(out, env)).sort();
      expect(files[0]).toBe(`000-namespace-fastnext-${env}.yaml`);
      expect(readManifestDir(path.join(out, env))).toEqual(synthObjects(loadEnvironment(env)));
    }
  });

  test('is deterministic: two runs give byte-identical trees', () => {
    const second = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-dist-'));
    try {
      expect(main(['--out', out])).toBe(0);
      expect(main(['--out', second])).toBe(0);
      expect(listTree(second)).toEqual(listTree(out));
    } finally {
      fs.rmSync(second, { recursive: true, force: true });
    }
  });

  test('fails when one environment is invalid, naming it, and leaves the previous dist/ intact', () => {
    // GIVEN a previous good synth
    expect(main(['--out', out])).toBe(0);
    const before = listTree(out);
    // WHEN a registry with one broken environment is synthesized
    const broken = { ...ENVIRONMENTS, prod: { ...ENVIRONMENTS.prod, api: { autoscaling: { minReplicas: 30 } } } };
    const code = main(['--out', out], broken);
    // THEN it exits non-zero with the field, value and rule, and nothing changed on disk
    expect(code).toBe(1);
    expect(errors.join('\n')).toBe(
      "Invalid config for environment 'prod':\n  - api.autoscaling.minReplicas: 30 must be <= maxReplicas (20)\n" +
        `synth: nothing written; ${out}/ keeps its previous content.`,
    );
    expect(listTree(out)).toEqual(before);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  test('fails when redis.appCommands refuses a command the API service sends, and leaves dist/ intact', () => {
    // GIVEN a previous good synth
    expect(main(['--out', out])).toBe(0);
    const before = listTree(out);
    // WHEN prod narrows the app ACL user to GET and SET
    const narrowed = { ...ENVIRONMENTS, prod: { ...ENVIRONMENTS.prod, redis: { appCommands: ['get', 'set'] } } };
    // THEN synth refuses, naming the field, the value, every command the service needs and the fix
    expect(main(['--out', out], narrowed)).toBe(1);
    const missing = APP_COMMANDS.filter((c) => c !== 'get' && c !== 'set');
    expect(errors.join('\n')).toBe(
      `Invalid config for environment 'prod':\n  - redis.appCommands: ["get","set"] refuses ${missing.join(', ')}, ` +
        "which the API service sends (service/src/cache/acl.ts): add them, or leave appCommands unset for exactly the service's list\n" +
        `synth: nothing written; ${out}/ keeps its previous content.`,
    );
    expect(listTree(out)).toEqual(before);
  });

  test('fails when a volume would shrink below the previous synth, and leaves dist/ intact', () => {
    // GIVEN prod synthesized with its 100Gi PostgreSQL volumes
    expect(main(['--out', out])).toBe(0);
    const before = listTree(out);
    // WHEN prod asks for 50Gi
    const shrunk = {
      ...ENVIRONMENTS,
      prod: { ...ENVIRONMENTS.prod, postgres: { ...ENVIRONMENTS.prod.postgres, storage: { size: '50Gi' } } },
    };
    // THEN synth refuses, naming both sizes, and writes nothing
    expect(main(['--out', out], shrunk)).toBe(1);
    expect(errors.join('\n')).toBe(
      `Environment 'prod': volumes cannot shrink, and a claim template is smaller than in ${out}/prod/:\n` +
        "  - StatefulSet postgres, claim template 'data': 100Gi -> 50Gi\n" +
        '  Keep the <tier>.storage.size of stacks/prod.ts at the previous size or larger (moving to a smaller volume is a new volume plus a backup restore: docs/day-2.md).\n' +
        `synth: nothing written; ${out}/ keeps its previous content.`,
    );
    expect(listTree(out)).toEqual(before);
  });

  test('fails when an environment is unknown', () => {
    expect(main(['--out', out, '--env', 'qa'])).toBe(1);
    expect(errors[0]).toBe(
      "Unknown environment 'qa'; registered: dev, staging, prod (add it in stacks/environments.ts)",
    );
    expect(fs.readdirSync(out)).toEqual([]);
  });

  test('npm run synth exits non-zero on a bad environment name (the real entry point)', () => {
    const r = spawnSync('node', ['tools/run.js', 'stacks/cdk8s-app.ts', '--env', 'nope', '--out', out], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("Unknown environment 'nope'");
  });

  test('npx cdk8s synth runs the same entry point through cdk8s.yaml', () => {
    const r = spawnSync('npx', ['cdk8s', 'synth', '--no-check-upgrade'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, CDK8S_OUTDIR: out },
    });
    expect(r.status).toBe(0);
    expect(fs.existsSync(path.join(ROOT, 'dist', 'prod', '000-namespace-fastnext-prod.yaml'))).toBe(true);
  }, 120000);
});

describe('README', () => {
  test('generated sections (topology diagram, environment table) match the model; run `npm run docs`', () => {
    const text = fs.readFileSync(README, 'utf8');
    expect(fillSections(text, generatedSections())).toBe(text);
  });

  test('starts with the two set-up commands', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(fs.readFileSync(README, 'utf8'))![1];
    expect(firstBlock.split('\n')[0]).toMatch(/^npm ci && npm run synth\b/);
    expect(firstBlock.split('\n')[1]).toMatch(/^npm test\b/);
  });
});

describe('apply order', () => {
  test('every NetworkPolicy and PDB comes before the first workload, so no pod starts unfenced', () => {
    for (const env of Object.keys(ENVIRONMENTS)) {
      const kinds = synthObjects(loadEnvironment(env)).map((o) => o.kind);
      const firstWorkload = kinds.findIndex((k) => ['StatefulSet', 'Deployment', 'Job', 'CronJob'].includes(k));
      expect(kinds.lastIndexOf('NetworkPolicy')).toBeLessThan(firstWorkload);
      expect(kinds.lastIndexOf('PodDisruptionBudget')).toBeLessThan(firstWorkload);
      expect(kinds.lastIndexOf('ConfigMap')).toBeLessThan(firstWorkload);
    }
  });
});
