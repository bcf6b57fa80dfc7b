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
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

// Transpiled files are cached by path, size and mtime, so a run with no
// changed source does not even load esbuild.
const CACHE_DIR = path.join(__dirname, '..', 'node_modules', '.cache', 'fastnext-run');
const CACHE_VERSION = '1';
let esbuild;

function transpile(filename) {
  const stat = fs.statSync(filename);
  const key = crypto
    .createHash('sha1')
    .update(`${CACHE_VERSION}\0${filename}\0${stat.size}\0${stat.mtimeMs}`)
    .digest('hex');
  const cached = path.join(CACHE_DIR, `${key}.js`);
  try {
    return fs.readFileSync(cached, 'utf8');
  } catch {
    /* miss */
  }
  esbuild ??= require('esbuild');
  const { code } = esbuild.transformSync(fs.readFileSync(filename, 'utf8'), {
    loader: 'ts',
    format: 'cjs',
    target: 'node20',
    sourcefile: filename,
    sourcemap: 'inline',
  });
  try {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    // Write then rename, so a concurrent run never reads half a file.
    const tmp = `${cached}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, code);
    fs.renameSync(tmp, cached);
  } catch {
    /* a read-only tree still runs, uncached */
  }
  return code;
}

require.extensions['.ts'] = (module, filename) => {
  module._compile(transpile(filename), filename);
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
