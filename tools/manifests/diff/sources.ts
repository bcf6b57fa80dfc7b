/**
 * Where the two sides of a diff come from: the working tree (synthesized in
 * this process), a git ref (synthesized in a temporary worktree by a child
 * process), or a directory of YAML (`dist/` layout: `<dir>/<env>/*.yaml`, or a
 * single environment's files directly in `<dir>`).
 */
import { execFile, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { environmentNames, loadEnvironment } from '../../../stacks/environments';
import { readManifestDir } from '../../../stacks/manifests';
import { type KubeObject, synthObjects } from '../../../stacks/synth';

/** Objects per environment name. */
export type Side = Map<string, KubeObject[]>;

/** An error the CLI reports as-is with exit code 2. */
export class DiffError extends Error {}

const run = promisify(execFile);

/** Synthesizes the working tree's environments (all registered ones, or `envs`). */
export function synthWorkingTree(envs?: readonly string[]): Side {
  const names = envs?.length ? envs.filter((e) => environmentNames().includes(e)) : environmentNames();
  return new Map(names.map((e) => [e, synthObjects(loadEnvironment(e))]));
}

/** Whether `dir` holds YAML files directly (one environment) rather than `<env>/` folders. */
export function isFlatDir(dir: string): boolean {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new DiffError(`diff: '${dir}' is not a directory`);
  return fs.readdirSync(dir).some((f) => /\.ya?ml$/.test(f));
}

/** Reads `<dir>/<env>/*.yaml` for each environment folder, or `<dir>/*.yaml` as the one environment `single()` names. */
export function readSideDir(dir: string, envs: readonly string[] | undefined, single: () => string): Side {
  if (isFlatDir(dir)) return new Map([[single(), readManifestDir(dir)]]);
  const names = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name);
  return new Map(
    names.filter((n) => !envs?.length || envs.includes(n)).map((n) => [n, readManifestDir(path.join(dir, n))]),
  );
}

function git(args: string[], cwd: string): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/**
 * Synthesizes the environments of git ref `ref`: checks it out in a temporary
 * `git worktree` (node_modules symlinked from this checkout), runs
 * synth-worker.ts there, and removes the worktree whatever happens.
 */
export async function synthGitRef(
  ref: string,
  envs: readonly string[] | undefined,
  repo = process.cwd(),
): Promise<Side> {
  let top: string;
  let sha: string;
  try {
    top = git(['rev-parse', '--show-toplevel'], repo);
    sha = git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], top);
  } catch {
    throw new DiffError(
      `diff: '${ref}' is not a commit of the git repository at ${repo} (try origin/main, HEAD~1 or a commit id)`,
    );
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-diff-'));
  const tree = path.join(tmp, 'tree');
  const out = path.join(tmp, 'objects.json');
  const cleanUp = () => {
    try {
      git(['worktree', 'remove', '--force', tree], top);
    } catch {
      // The worktree was never created (or is already gone); prune drops any stale entry.
      git(['worktree', 'prune'], top);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  // Ctrl-C skips `finally`: remove the worktree before exiting so none is left registered.
  const onInterrupt = () => {
    cleanUp();
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    git(['worktree', 'add', '--detach', '--quiet', tree, sha], top);
    fs.symlinkSync(path.join(top, 'node_modules'), path.join(tree, 'node_modules'), 'dir');
    const worker = path.join(__dirname, 'synth-worker.ts');
    const runner = path.join(__dirname, '..', '..', 'run.js');
    try {
      await run(process.execPath, [runner, worker, tree, out, ...(envs ?? [])], { cwd: tree, maxBuffer: 16 * 2 ** 20 });
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
      throw new DiffError(
        `diff: synthesizing base ${ref} (${sha.slice(0, 12)}) failed:\n${stderr || (err as Error).message}`,
      );
    }
    const parsed = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, KubeObject[]>;
    return new Map(Object.entries(parsed));
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    cleanUp();
  }
}
