/**
 * `npm run capacity [-- --env prod] [--dir dist/prod]`: per environment, the CPU
 * and memory requested and limited at the HPA minimum and maximum, and the
 * persistent storage claimed, then (per environment) the PostgreSQL connection budget.
 * Exit 2 on a config error.
 */
import { parseArgs } from 'util';
import { environmentNames, loadEnvironment } from '../../../stacks/environments';
import { readManifestDir } from '../../../stacks/manifests';
import { synthObjects } from '../../../stacks/synth';
import { connectionBudget, formatConnectionBudget } from '../../../stacks/connection-budget';
import { capacityOf, formatCapacityText } from './capacity';

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: { env: { type: 'string', multiple: true }, dir: { type: 'string', multiple: true } },
  });
  try {
    // From an environment, the connection budget (a config property) follows the CPU and memory table.
    const sets = values.dir
      ? values.dir.map((d) => [d, readManifestDir(d), ''] as const)
      : (values.env ?? environmentNames()).map((e) => {
          const config = loadEnvironment(e);
          const budget = formatConnectionBudget(connectionBudget(config))
            .map((l) => `  ${l}\n`)
            .join('');
          return [e, synthObjects(config), budget] as const;
        });
    process.stdout.write(
      sets.map(([label, objects, budget]) => formatCapacityText(label, capacityOf(objects)) + budget).join('\n'),
    );
    return 0;
  } catch (err) {
    console.error(`capacity: ${(err as Error).message}`);
    return 2;
  }
}
