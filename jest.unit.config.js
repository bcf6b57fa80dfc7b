/**
 * `npm run test:unit`: the fast lane. The same suite as jest.config.js minus the
 * tests that start real servers (PostgreSQL, Redis, nginx, Prometheus, the
 * exporters, the twin); those run in `npm test`. test/test-lanes.test.ts fails
 * when a test that starts servers is missing from this list.
 */
const base = require('./jest.config');

/** Test files that start real servers (paths relative to the repository root). */
const SERVER_TESTS = [
  'test/alert-delivery.test.ts',
  'test/alertmanager.test.ts',
  'test/api-image.test.ts',
  'test/backup.test.ts',
  'test/backup-config.test.ts',
  'test/data-images.test.ts',
  'test/drills.test.ts',
  'test/edge-cert-reload.test.ts',
  'test/edge-nginx.test.ts',
  'test/launcher.test.ts',
  'test/metrics-existence.test.ts',
  'test/nginx.test.ts',
  'test/patroni.test.ts',
  'test/patroni-reconfigure.test.ts',
  'test/postgres-roles.test.ts',
  'test/postgres-rotation.test.ts',
  'test/postgres-security.test.ts',
  'test/prometheus-discovery.test.ts',
  'test/prometheus-runtime.test.ts',
  'test/promtool.test.ts',
  'test/redis.test.ts',
  'test/redis-rotation.test.ts',
  'test/redis-scale.test.ts',
  'test/twin.test.ts',
  'service/test/integration/',
];

module.exports = {
  ...base,
  testPathIgnorePatterns: ['/node_modules/', ...SERVER_TESTS.map((p) => `<rootDir>/${p}`)],
};
// Not enumerable: jest warns about unknown options; test/test-lanes.test.ts reads it.
Object.defineProperty(module.exports, 'SERVER_TESTS', { value: SERVER_TESTS, enumerable: false });
