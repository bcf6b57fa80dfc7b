/**
 * Each client plugin names the plugins it needs (fastify-plugin `dependencies`), so a wrong
 * registration order fails at boot with Fastify's message, not later with `undefined`.
 */
import Fastify from 'fastify';
import { loadConfig } from '../../src/config';
import { cachePlugin } from '../../src/plugins/cache';
import { envPlugin } from '../../src/plugins/env';
import { metricsPlugin } from '../../src/plugins/metrics';
import { pgPlugin } from '../../src/plugins/pg';
import { redisPlugin } from '../../src/plugins/redis';

const config = loadConfig({
  POSTGRES_SERVER: '127.0.0.1:1',
  POSTGRES_PASSWORD: 'x',
  CACHE_ENABLED: 'false',
  MANAGEMENT_TOKEN: 'unit-test-token-0123456789',
});

test.each([
  { plugin: 'pg', registered: ['env'], missing: 'metrics' },
  { plugin: 'pg', registered: ['metrics'], missing: 'env' },
  { plugin: 'redis', registered: ['metrics'], missing: 'env' },
  { plugin: 'cache', registered: ['env', 'metrics'], missing: 'redis' },
  { plugin: 'cache', registered: ['env', 'redis'], missing: 'metrics' },
])('fails at boot when $plugin is registered without $missing', async ({ plugin, registered, missing }) => {
  // GIVEN an instance with only some of the plugin's dependencies
  const app = Fastify({ logger: false });
  const plugins = {
    env: async () => app.register(envPlugin, { config }),
    metrics: async () => app.register(metricsPlugin),
    redis: async () => app.register(redisPlugin, {}),
    pg: async () => app.register(pgPlugin, {}),
    cache: async () => app.register(cachePlugin),
  } as const;
  try {
    for (const name of registered) await plugins[name as keyof typeof plugins]();
    // WHEN the plugin is registered THEN Fastify refuses it, naming the missing dependency
    await expect(plugins[plugin as keyof typeof plugins]()).rejects.toThrow(
      `The dependency '${missing}' of plugin '${plugin}' is not registered`,
    );
  } finally {
    await app.close();
  }
});

test('the plugins boot in the order the app registers them', async () => {
  const app = Fastify({ logger: false });
  await app.register(envPlugin, { config });
  await app.register(metricsPlugin);
  await app.register(pgPlugin, {});
  await app.register(redisPlugin, {});
  await app.register(cachePlugin);
  await app.ready();
  expect([app.config, app.metrics, app.db, app.cache]).not.toContain(undefined);
  await app.close();
});
