/**
 * The server lane of `npm test`: the tests that start real servers (SERVER_TESTS in
 * jest.unit.config.js), one file at a time. Each of them brings up whole tiers (Patroni
 * members, six Redis nodes, the twin with its kubelets, containers) and many drill under
 * load with timing bounds; two side by side on a 2-core machine starve each other and
 * fail on time, not on behaviour. `tools/test.sh` runs the fast lane first (two workers),
 * then this lane.
 */
const base = require('./jest.config');
const { SERVER_TESTS } = require('./jest.unit.config');

module.exports = {
  ...base,
  testMatch: SERVER_TESTS.map((p) => (p.endsWith('/') ? `<rootDir>/${p}**/*.test.ts` : `<rootDir>/${p}`)),
  maxWorkers: 1,
};
