/**
 * `npm run capacity [-- --env prod] [--dir dist/prod]`: per environment, the CPU
 * and memory requested and limited at the HPA minimum and maximum, and the
 * persistent storage claimed. Exit 2 on a config error.
 */
import { parseArgs } from 'util';
import { environmentNames, loadEnvironment } from '../../../stacks/environments';
import { readManifestDir } from '../../../stacks/manifests';
import { synthObjects } from '../../../stacks/synth';
import { capacityOf, formatCapacityText } from './capacity';

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: { env: { type: 'string', multiple: true }, dir: { type: 'string', multiple: true } },
  });
  try {
    const sets = values.dir
      ? values.dir.map((d) => [d, readManifestDir(d)] as const)
      : (values.env ?? environmentNames()).map((e) => [e, synthObjects(loadEnvironment(e))] as const);
    process.stdout.write(sets.map(([label, objects]) => formatCapacityText(label, capacityOf(objects))).join('\n'));
    return 0;
  } catch (err) {
    console.error(`capacity: ${(err as Error).message}`);
    return 2;
  }
}
