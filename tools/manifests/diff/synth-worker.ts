/**
 * Child process of `npm run diff -- --base <ref>`: synthesizes the environments
 * of another checkout (a temporary git worktree) with that checkout's own
 * stacks/ and constructs/, and writes `{ env: objects[] }` as JSON to a file.
 * A separate process, so two versions of the constructs never share a module
 * cache.
 *
 *   node tools/run.js tools/manifests/diff/synth-worker.ts <tree> <out.json> [env...]
 */
import * as fs from 'fs';
import * as path from 'path';

interface StacksApi {
  environmentNames(): string[];
  loadEnvironment(name: string): unknown;
}
interface SynthApi {
  synthObjects(config: unknown): unknown[];
}

export function main([tree, out, ...wanted]: string[]): number {
  const root = path.resolve(tree);
  for (const file of ['stacks/environments.ts', 'stacks/synth.ts']) {
    if (!fs.existsSync(path.join(root, file))) {
      console.error(
        `diff: the base has no ${file}, so it cannot be synthesized; diff against a dist/ folder with --base-dir instead`,
      );
      return 2;
    }
  }
  // Config files the constructs read relative to the repo root resolve inside the base checkout.
  process.chdir(root);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the base's modules are only known at run time
  const stacks = require(path.join(root, 'stacks/environments')) as StacksApi;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const synth = require(path.join(root, 'stacks/synth')) as SynthApi;
  const names = stacks.environmentNames().filter((n) => wanted.length === 0 || wanted.includes(n));
  const result = Object.fromEntries(names.map((n) => [n, synth.synthObjects(stacks.loadEnvironment(n))]));
  fs.writeFileSync(out, JSON.stringify(result));
  return 0;
}
