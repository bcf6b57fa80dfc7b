/**
 * The process lane of `npm test`: the tests that start no server but run other
 * programs (PROCESS_TESTS in jest.unit.config.js), two files at a time like the
 * fast lane. `tools/test.sh` runs it between the fast lane and the server lane.
 */
const base = require('./jest.config');
const { PROCESS_TESTS } = require('./jest.unit.config');

module.exports = {
  ...base,
  testMatch: PROCESS_TESTS.map((p) => `<rootDir>/${p}`),
};
