/**
 * `npm run test:unit`: the fast lane, the tests that run in the jest process only.
 * The same suite as jest.config.js minus two lists, which `npm test` runs after it:
 * - SERVER_TESTS start real servers (PostgreSQL, Redis, nginx, Prometheus, the
 *   exporters, the twin): the server lane, jest.server.config.js;
 * - PROCESS_TESTS start no server but run other programs (the CLI entry points,
 *   openssl, python3, git, dash and ShellCheck, a jest child): the process lane,
 *   jest.process.config.js.
 * test/test-lanes.test.ts fails when a test that starts servers or imports
 * child_process is missing from these lists, or a listed one does neither.
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

/** Test files that start no server but run other programs in child processes. */
const PROCESS_TESTS = [
  'test/credentials.test.ts',
  'test/diff.test.ts',
  'test/patroni-liveness.test.ts',
  'test/patroni-start.test.ts',
  'test/resize.test.ts',
  'test/shipped-scripts.test.ts',
  'test/synth-cli.test.ts',
  'test/test-lanes.test.ts',
  'test/twin-bench.test.ts',
  'service/test/unit/log-stream.test.ts',
];

module.exports = {
  ...base,
  testPathIgnorePatterns: ['/node_modules/', ...[...SERVER_TESTS, ...PROCESS_TESTS].map((p) => `<rootDir>/${p}`)],
};
// Not enumerable: jest warns about unknown options; test/test-lanes.test.ts and the other lanes read them.
Object.defineProperty(module.exports, 'SERVER_TESTS', { value: SERVER_TESTS, enumerable: false });
Object.defineProperty(module.exports, 'PROCESS_TESTS', { value: PROCESS_TESTS, enumerable: false });
