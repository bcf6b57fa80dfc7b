/**
 * The Dockerfile's promises, checked against the files it uses (no Docker engine here):
 * pinned Node LTS >= 22, production dependencies only, numeric non-root user, and a
 * command that matches the contract.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICE_COMMANDS, SERVICE_PORTS } from '../../src/contract';

const dockerfile = readFileSync(join(__dirname, '../../Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(__dirname, '../../../package.json'), 'utf8'));

test('uses a pinned Node LTS image, 22 or newer', () => {
  const m = /^ARG NODE_IMAGE=node:(\d+)\.(\d+)\.(\d+)-[a-z-]+$/m.exec(dockerfile);
  expect(m).not.toBeNull();
  expect(Number(m![1])).toBeGreaterThanOrEqual(22);
  expect(Number(m![1]) % 2).toBe(0); // even majors are the LTS lines
});

test('the runtime stage gets production dependencies only, and they are the service runtime deps', () => {
  expect(dockerfile).toContain('npm ci --omit=dev --ignore-scripts');
  expect(dockerfile).toMatch(/COPY --from=deps \/app\/node_modules \/app\/node_modules/);
  expect(Object.keys(pkg.dependencies).sort()).toEqual([
    '@fastify/swagger',
    'ajv',
    'ajv-formats',
    'fastify',
    'fastify-plugin',
    'ioredis',
    'pg',
    'pino',
    'prom-client',
    'zod',
  ]);
});

test('runs as a numeric non-root user', () => {
  const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
  expect(user).not.toBeNull();
  expect(Number(user![1])).toBeGreaterThan(0);
});

test('its command and ports are the contract', () => {
  expect(dockerfile).toContain(`CMD ${JSON.stringify(SERVICE_COMMANDS.entrypoint).replace(/,/g, ', ')}`);
  expect(dockerfile).toContain(`EXPOSE ${SERVICE_PORTS.http} ${SERVICE_PORTS.metrics}`);
  expect(dockerfile).toMatch(/^WORKDIR \/app\/service$/m);
});

test('the build compiles to the entry point the contract names', () => {
  const build = JSON.parse(readFileSync(join(__dirname, '../../tsconfig.build.json'), 'utf8'));
  expect(`${build.compilerOptions.outDir}/server.js`).toBe(SERVICE_COMMANDS.entrypoint[1]);
  expect(build.compilerOptions.rootDir).toBe('src');
});
