/**
 * `npm run image:build` without building: which Dockerfiles it finds, which base
 * images it substitutes, which tag each image gets. (test/api-image.test.ts builds and runs.)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localBase } from '../tools/runtime/images/bases';
import { baseArgs, BUDGETS, discoverImages, imageMismatches, plannedImages } from '../tools/runtime/images/build';

const ROOT = join(__dirname, '..');

test("the API's Dockerfile names its build base and its runtime base as ARGs", () => {
  expect(baseArgs(readFileSync(join(ROOT, 'service/Dockerfile'), 'utf8'))).toEqual([
    { name: 'NODE_IMAGE', image: 'node:22.12.0-bookworm-slim' },
    { name: 'RUNTIME_IMAGE', image: 'debian:bookworm-slim' },
  ]);
});

test('finds images/<name>/Dockerfile beside the API, with its own folder as the context', () => {
  const root = mkdtempSync(join(tmpdir(), 'fastnext-images-'));
  try {
    mkdirSync(join(root, 'images', 'postgres'), { recursive: true });
    mkdirSync(join(root, 'images', 'notes'), { recursive: true });
    writeFileSync(
      join(root, 'images', 'postgres', 'Dockerfile'),
      'ARG POSTGRES_IMAGE=postgres:15.10-bookworm\nFROM ${POSTGRES_IMAGE}\nUSER 999:999\n',
    );
    const found = discoverImages(root);
    expect(found.map((s) => s.name)).toEqual(['api', 'postgres']);
    expect(found[1]).toEqual({
      name: 'postgres',
      dockerfile: join(root, 'images/postgres/Dockerfile'),
      context: join(root, 'images/postgres'),
      ignoreFile: undefined,
    });
    expect(baseArgs(readFileSync(found[1].dockerfile, 'utf8'))).toEqual([
      { name: 'POSTGRES_IMAGE', image: 'postgres:15.10-bookworm' },
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("tags the API image with the Deployment's image (api.image)", () => {
  expect(plannedImages().find((p) => p.name === 'api')).toEqual({
    name: 'api',
    dockerfile: 'service/Dockerfile',
    context: '.',
    tag: 'ghcr.io/fastnext/api:0.1.0',
    image: 'ghcr.io/fastnext/api',
  });
});

test('tags every image with the image its manifests run: postgres (Patroni) and pgbouncer too', () => {
  expect(plannedImages().map((p) => [p.name, p.dockerfile, p.tag])).toEqual([
    ['api', 'service/Dockerfile', 'ghcr.io/fastnext/api:0.1.0'],
    ['pgbouncer', 'images/pgbouncer/Dockerfile', 'ghcr.io/fastnext/pgbouncer:1.18.0-1'],
    ['postgres', 'images/postgres/Dockerfile', 'ghcr.io/fastnext/postgres:15-3.0.2-1-pgbackrest2.45'],
  ]);
});

test('refuses a manifest image no Dockerfile builds, and a Dockerfile no manifest runs', () => {
  const tags = new Map([
    ['api', 'ghcr.io/fastnext/api:0.1.0'],
    ['postgres-patroni', 'ghcr.io/fastnext/postgres-patroni:15'],
  ]);
  expect(imageMismatches(['api', 'postgres'], tags)).toEqual([
    "the manifests run ghcr.io/fastnext/postgres-patroni:15, but no Dockerfile builds 'postgres-patroni': " +
      'add images/postgres-patroni/Dockerfile or change the image',
    "images/postgres/Dockerfile builds 'postgres', but no manifest runs ghcr.io/fastnext/postgres: " +
      'name the folder after the image the manifests use',
  ]);
  expect(imageMismatches(['api'], new Map([['api', 'ghcr.io/fastnext/api:1']]))).toEqual([]);
});

test('the API budget forbids npm, the sources and the dev-only packages, not runtime ones', () => {
  const forbidden = BUDGETS.api.forbidden ?? [];
  expect(forbidden).toEqual(expect.arrayContaining(['/usr/local/lib/node_modules/npm', '/app/service/src']));
  expect(forbidden).toEqual(
    expect.arrayContaining(['/app/node_modules/typescript/', '/app/node_modules/@pulumi/pulumi/']),
  );
  // yaml is a devDependency of ours but also a dependency of @fastify/swagger: it ships.
  expect(forbidden).not.toContain('/app/node_modules/yaml/');
  expect(forbidden).not.toContain('/app/node_modules/fastify/');
});

test('fails when no local recipe stands in for a base image', async () => {
  await expect(localBase('redis:7.0.15-bookworm', () => undefined)).rejects.toThrow(
    "no registry is reachable and no local recipe stands in for base image 'redis:7.0.15-bookworm' " +
      '(known: debian:bookworm[-slim], node:<version>-bookworm[-slim], postgres:15.x-bookworm); ' +
      'add one to tools/runtime/images/bases.ts',
  );
});
