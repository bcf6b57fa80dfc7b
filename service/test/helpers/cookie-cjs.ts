/**
 * `cookie` 2.x (a dependency of fastify's light-my-request, which powers
 * app.inject) ships only as an ES module, which Jest's CommonJS runtime on
 * Node 20 cannot require. This loads the same file transpiled to CommonJS, so
 * inject runs the real cookie code. jest.config.js maps `cookie` here for every test
 * (moduleNameMapper).
 */
import { transformSync } from 'esbuild';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const file = join(__dirname, '../../../node_modules/cookie/dist/index.js');
const { code } = transformSync(readFileSync(file, 'utf8'), { format: 'cjs', loader: 'js', target: 'node20' });
const mod = { exports: {} as Record<string, unknown> };
new Function('module', 'exports', 'require', code)(mod, mod.exports, require);
module.exports = mod.exports;
