/**
 * `npm run validate [-- --env prod] [--dir dist/prod]`: strict schema
 * validation of every synthesized object against the Kubernetes 1.28 API
 * (types, enums, required fields, unknown fields). Exit 1 on any problem.
 */
import { parseArgs } from 'util';
import { environmentNames, loadEnvironment } from '../stacks/environments';
import { readManifestDir } from '../stacks/manifests';
import { type KubeObject, synthObjects } from '../stacks/synth';
import { checkObjects } from './schema-check';

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: { env: { type: 'string', multiple: true }, dir: { type: 'string', multiple: true } },
  });
  const sets: [string, KubeObject[]][] = values.dir
    ? values.dir.map((d) => [d, readManifestDir(d)])
    : (values.env ?? environmentNames()).map((e) => [e, synthObjects(loadEnvironment(e))]);
  let failed = false;
  for (const [label, objects] of sets) {
    const problems = checkObjects(objects);
    if (problems.length) {
      failed = true;
      console.error(`${label}: ${problems.length} schema problem(s)`);
      for (const p of problems) console.error(`  ${p.object}: ${p.path}: ${p.message}`);
    } else {
      console.log(`${label}: ${objects.length} objects valid against the Kubernetes 1.28 API (strict)`);
    }
  }
  return failed ? 1 : 0;
}
