/**
 * `npm run service:openapi` (also part of `npm run docs`): writes service/openapi.json, the
 * OpenAPI document the service serves at SERVICE_PATHS.openapi, generated from the route
 * schemas. service/test/unit/openapi.test.ts fails when the checked-in copy is stale.
 */
import * as fs from 'fs';
import * as path from 'path';
import { buildApp } from '../src/app';
import { loadConfig } from '../src/config';
import { SERVICE_PATHS } from '../src/contract';

export const OPENAPI_FILE = path.join(__dirname, '..', 'openapi.json');

/**
 * The document as the service serves it, rendered without any server: no replicas and the
 * cache off, so nothing connects (the primary is only dialled by a request that needs it).
 */
export async function renderOpenApi(): Promise<string> {
  const app = await buildApp(
    loadConfig({
      POSTGRES_SERVER: '127.0.0.1:1',
      POSTGRES_PASSWORD: 'unused',
      CACHE_ENABLED: 'false',
      MANAGEMENT_TOKEN: 'unused-unused-unused',
    }),
    { logger: false },
  );
  try {
    const res = await app.inject({ method: 'GET', url: SERVICE_PATHS.openapi });
    if (res.statusCode !== 200) throw new Error(`GET ${SERVICE_PATHS.openapi} answered ${res.statusCode}: ${res.body}`);
    return JSON.stringify(res.json(), null, 2) + '\n';
  } finally {
    await app.close();
  }
}

export async function main(): Promise<number> {
  fs.writeFileSync(OPENAPI_FILE, await renderOpenApi());
  console.log(`${path.relative(process.cwd(), OPENAPI_FILE)}: written`);
  return 0;
}
