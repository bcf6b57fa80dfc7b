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
  /** One good synth of every environment, made once: the refusal tests start from a copy of it. */
  let golden: string;
  beforeAll(() => {
    golden = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-golden-'));
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    expect(main(['--out', golden])).toBe(0);
    log.mockRestore();
  });
  afterAll(() => fs.rmSync(golden, { recursive: true, force: true }));
  /** `out` holds a previous good synth (a copy of the golden tree). */
  const previousSynth = () => fs.cpSync(golden, out, { recursive: true });
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
    // (The tree main() wrote in beforeAll.)
    expect(fs.readdirSync(golden).sort()).toEqual(Object.keys(ENVIRONMENTS).sort());
    for (const env of Object.keys(ENVIRONMENTS)) {
      const files = fs.readdirSync(path.join(golden, env)).sort();
      expect(files[0]).toBe(`000-namespace-fastnext-${env}.yaml`);
      expect(readManifestDir(path.join(golden, env))).toEqual(synthObjects(loadEnvironment(env)));
    }
  });

  test('is deterministic: two runs give byte-identical trees', () => {
    expect(main(['--out', out])).toBe(0);
    expect(listTree(out)).toEqual(listTree(golden));
  });

  test('fails when one environment is invalid, naming it, and leaves the previous dist/ intact', () => {
    // GIVEN a previous good synth
    previousSynth();
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
    previousSynth();
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
    previousSynth();
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
