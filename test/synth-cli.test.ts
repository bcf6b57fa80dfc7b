/**
 * The synth entry points as a user runs them, in child processes: `npm run synth`
 * (tools/run.js) and `npx cdk8s synth` through cdk8s.yaml. In the process lane
 * (jest.process.config.js); the in-process behaviour is in synth.test.ts.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');

describe('synth from the command line', () => {
  let out: string;
  beforeEach(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-dist-'));
  });
  afterEach(() => fs.rmSync(out, { recursive: true, force: true }));

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
