#!/usr/bin/env node
/**
 * Runs a TypeScript entry point of this repo: `node tools/run.js <file.ts> [args]`;
 * calls its exported `main(args)` and exits with the code it returns.
 *
 * Each .ts file is transpiled on load with esbuild (no type check: `npm run
 * typecheck` and `npm test` do that once for the whole tree). This is what makes
 * `npm run synth` several times faster than ts-node, the cdk8s-init default.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { transformSync } = require('esbuild');

require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    loader: 'ts',
    format: 'cjs',
    target: 'node20',
    sourcefile: filename,
    sourcemap: 'inline',
  });
  module._compile(code, filename);
};

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node tools/run.js <entry.ts> [args...]');
  process.exit(2);
}
const resolved = path.resolve(entry);
process.argv = [process.argv[0], resolved, ...args];
// Entry points export `main(argv): number | Promise<number>` (so tests can call
// them too); a file without `main` is simply run for its side effects.
const mod = require(resolved);
if (typeof mod.main === 'function') {
  Promise.resolve(mod.main(args)).then(
    (code) => {
      process.exitCode = typeof code === 'number' ? code : 0;
    },
    (err) => {
      console.error(err instanceof Error ? err.stack : err);
      process.exitCode = 2;
    },
  );
}
