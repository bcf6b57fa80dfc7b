/**
 * cdk8s entry point: synthesizes every registered environment (or those named
 * with --env) into `dist/<env>/`. Config errors and schema errors are reported
 * before anything is written, so `dist/` keeps its previous content.
 *
 *   npm run synth [-- --env prod] [--out dist]
 *   npx cdk8s synth --no-check-upgrade   (through cdk8s.yaml)
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'util';
import { shrunkClaims } from '../tools/manifests/diff/immutable';
import { checkObjects } from '../tools/manifests/schema-check';
import { type EnvironmentOverrides } from './config';
import { ENVIRONMENTS, loadEnvironment } from './environments';
import { readManifestDir, writeEnvironments } from './manifests';
import { type KubeObject, synthObjects } from './synth';

export function main(argv: string[], registry: Readonly<Record<string, EnvironmentOverrides>> = ENVIRONMENTS): number {
  const { values } = parseArgs({
    args: argv,
    options: { env: { type: 'string', multiple: true }, out: { type: 'string' } },
  });
  const out = values.out ?? process.env.CDK8S_OUTDIR ?? 'dist';
  const names = values.env ?? Object.keys(registry);
  const results = new Map<string, KubeObject[]>();
  const errors: string[] = [];
  for (const name of names) {
    try {
      const objects = synthObjects(loadEnvironment(name, {}, registry));
      const problems = checkObjects(objects);
      if (problems.length) {
        errors.push(
          `Environment '${name}' synthesized invalid objects:\n` +
            problems.map((p) => `  - ${p.object}: ${p.path}: ${p.message}`).join('\n'),
        );
      }
      // Volumes cannot shrink: a smaller claim template than the previous synth is refused.
      const previous = join(out, name);
      if (existsSync(previous)) {
        const shrunk = shrunkClaims(readManifestDir(previous), objects);
        if (shrunk.length) {
          errors.push(
            `Environment '${name}': volumes cannot shrink, and a claim template is smaller than in ${previous}/:\n` +
              shrunk.map((s) => `  - ${s}`).join('\n') +
              `\n  Keep the <tier>.storage.size of stacks/${name}.ts at the previous size or larger ` +
              `(moving to a smaller volume is a new volume plus a backup restore: docs/day-2.md).`,
          );
        }
      }
      results.set(name, objects);
    } catch (err) {
      // ConfigError and unknown-environment errors carry the whole explanation.
      if (err instanceof Error) errors.push(err.message);
      else throw err;
    }
  }
  if (errors.length) {
    console.error(errors.join('\n'));
    console.error(`synth: nothing written; ${out}/ keeps its previous content.`);
    return 1;
  }
  writeEnvironments(out, results);
  for (const [name, objects] of results) console.log(`synth: ${out}/${name}/ (${objects.length} objects)`);
  return 0;
}
