/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/service/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // Type checking is done once for the whole tree by `tsc --noEmit` in `npm test`;
    // ts-jest only transpiles here, which keeps the suite fast.
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 60000,
  maxWorkers: 2,
};
