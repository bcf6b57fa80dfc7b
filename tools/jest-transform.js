/**
 * Jest's transform for this repo's TypeScript: esbuild, as tools/run.js uses for `npm run synth`
 * (no type check: `npm run typecheck` does that once for the whole tree; tsconfig has
 * isolatedModules, so a file transpiles on its own). Several times faster than ts-jest on a
 * clean clone, where nothing is cached yet.
 *
 * esbuild does not hoist `jest.mock` calls above the imports the way babel-jest and ts-jest
 * do: replace modules with `moduleNameMapper` in the Jest config instead.
 */
'use strict';
const crypto = require('crypto');
const { transformSync, version } = require('esbuild');

// import() becomes require(): Jest's CommonJS runtime has no ES module loader (as ts-jest compiles it).
const OPTIONS = {
  loader: 'ts',
  format: 'cjs',
  target: 'node20',
  supported: { 'dynamic-import': false },
  sourcemap: 'external',
};

module.exports = {
  process(source, filename) {
    if (/^\s*jest\.mock\(/m.test(source)) {
      throw new Error(
        `${filename}: jest.mock is not hoisted by this transform; use moduleNameMapper in the Jest config`,
      );
    }
    const { code, map } = transformSync(source, { ...OPTIONS, sourcefile: filename });
    return { code, map };
  },
  getCacheKey(source, filename) {
    return crypto
      .createHash('sha1')
      .update(`${version}\0${JSON.stringify(OPTIONS)}\0${filename}\0${source}`)
      .digest('hex');
  },
};
