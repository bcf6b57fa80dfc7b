/**
 * `npm run bench:synth`: wall time of synthesizing + validating every
 * environment, median of 5 runs, against the cdk8s-init default (`npx cdk8s
 * synth` running the app through ts-node) measured in the same run. Prints a
 * table with ratios (this machine is shared and noisy; ratios travel better).
 */
import { spawnSync } from 'child_process';
import { median } from '../k8s/values';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function time(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return ms;
}

export function main(): number {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-bench-'));
  try {
    // The cdk8s-init default: cdk8s.yaml `app: npx ts-node main.ts` (ts-node type-checks as it loads).
    const baselineDir = path.join(tmp, 'baseline');
    fs.mkdirSync(baselineDir);
    fs.writeFileSync(
      path.join(baselineDir, 'main.ts'),
      `import { main } from '${ROOT}/stacks/cdk8s-app';\nprocess.exitCode = main(['--out', 'dist']);\n`,
    );
    fs.writeFileSync(
      path.join(baselineDir, 'cdk8s.yaml'),
      `language: typescript\napp: ${ROOT}/node_modules/.bin/ts-node --project ${ROOT}/tsconfig.json main.ts\noutput: dist\n`,
    );
    const cases: [string, () => number][] = [
      [
        'npm run synth + npm run validate (esbuild loader), all envs',
        () =>
          time('node', ['tools/run.js', 'stacks/cdk8s-app.ts', '--out', path.join(tmp, 'out')], ROOT) +
          time('node', ['tools/run.js', 'tools/manifests/validate.ts'], ROOT),
      ],
      [
        'npx cdk8s synth through our cdk8s.yaml (esbuild loader)',
        () =>
          time(`${ROOT}/node_modules/.bin/cdk8s`, ['synth', '--no-check-upgrade'], ROOT, {
            ...process.env,
            CDK8S_OUTDIR: path.join(tmp, 'out-cli'),
          }),
      ],
      [
        'baseline: npx cdk8s synth, app via ts-node (cdk8s init default)',
        () => time(`${ROOT}/node_modules/.bin/cdk8s`, ['synth', '--no-check-upgrade'], baselineDir),
      ],
    ];
    const results = cases.map(([name, run]) => {
      const samples = Array.from({ length: RUNS }, run);
      return { name, median: median(samples), min: Math.min(...samples), max: Math.max(...samples) };
    });
    const base = results[results.length - 1].median;
    console.log(`synth benchmark: ${RUNS} runs each, ${os.cpus().length} cores, node ${process.version}\n`);
    console.log('| case | median ms | min ms | max ms | vs baseline |');
    console.log('|---|---|---|---|---|');
    for (const r of results) {
      console.log(
        `| ${r.name} | ${r.median.toFixed(0)} | ${r.min.toFixed(0)} | ${r.max.toFixed(0)} | ${r.median === base ? 'baseline' : `${(base / r.median).toFixed(2)}x faster`} |`,
      );
    }
    return 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
