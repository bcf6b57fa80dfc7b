/**
 * `npm run diff -- [--base <git-ref> | --base-dir <dir>] [--head-dir <dir>] [--env <name>]... [--format text|markdown|json]`
 *
 * Shows what a change does to each environment's manifests, object by object.
 * The base defaults to `--base HEAD` (what the uncommitted change does); the
 * head is the working tree, or `--head-dir`. Exit 0 when nothing differs, 1
 * when something does, 3 when a change is one Kubernetes refuses in place
 * (an immutable field: CI blocks it unless the documented procedure is
 * followed), 2 on an error.
 */
import { parseArgs } from 'util';
import { capacityOf } from '../capacity/capacity';
import { DIFF_FORMATS, type DiffFormat, type EnvironmentResult, formatDiff } from './format';
import { diffEnvironment, immutableCount, isEmpty } from './object-diff';
import { DiffError, type Side, isFlatDir, readSideDir, synthGitRef, synthWorkingTree } from './sources';

/** Exit status when a change touches an immutable field. */
export const EXIT_IMMUTABLE = 3;

export async function main(argv: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        base: { type: 'string' },
        'base-dir': { type: 'string' },
        'head-dir': { type: 'string' },
        env: { type: 'string', multiple: true },
        format: { type: 'string', default: 'text' },
      },
    });
    const format = values.format as DiffFormat;
    if (!DIFF_FORMATS.includes(format))
      throw new DiffError(`diff: --format '${values.format}' is not one of ${DIFF_FORMATS.join(', ')}`);
    if (values.base && values['base-dir'])
      throw new DiffError('diff: give --base <git-ref> or --base-dir <dir>, not both');
    const envs = values.env;
    const dirs = [values['base-dir'], values['head-dir']].filter((d): d is string => d !== undefined);
    // Two flat directories pair as one environment; a flat one against a synthesized tree needs its name.
    const bothFlat = dirs.length === 2 && dirs.every(isFlatDir);
    const single = (dir: string) => {
      const name = envs?.[0] ?? (bothFlat ? 'manifests' : undefined);
      if (!name) throw new DiffError(`diff: '${dir}' holds the YAML of one environment; name it with --env <name>`);
      return name;
    };

    // The base synthesizes in a child process while this one synthesizes the head.
    const basePromise: Promise<Side> = values['base-dir']
      ? Promise.resolve(readSideDir(values['base-dir'], envs, () => single(values['base-dir'] as string)))
      : synthGitRef(values.base ?? 'HEAD', envs);
    let head: Side;
    try {
      head = values['head-dir']
        ? readSideDir(values['head-dir'], envs, () => single(values['head-dir'] as string))
        : synthWorkingTree(envs);
    } finally {
      // Let the base finish (and remove its worktree) even when the head fails.
      await basePromise.catch(() => undefined);
    }
    const base = await basePromise;

    const names = [...new Set([...head.keys(), ...base.keys()])];
    if (names.length === 0)
      throw new DiffError(`diff: no environment to compare${envs ? ` (--env ${envs.join(', ')} matched none)` : ''}`);
    const results: EnvironmentResult[] = names.map((name) => {
      const before = base.get(name);
      const after = head.get(name);
      return {
        name,
        diff: diffEnvironment(before ?? [], after ?? []),
        capacity: { base: before && capacityOf(before), head: after && capacityOf(after) },
      };
    });
    process.stdout.write(formatDiff(format, results));
    if (results.some((r) => immutableCount(r.diff) > 0)) return EXIT_IMMUTABLE;
    return results.every((r) => isEmpty(r.diff)) ? 0 : 1;
  } catch (err) {
    console.error(err instanceof DiffError ? err.message : `diff: ${(err as Error).message}`);
    return 2;
  }
}
