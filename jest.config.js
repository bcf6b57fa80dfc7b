/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/service/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // Type checking is done once for the whole tree by `tsc --noEmit` in `npm test`;
    // here esbuild only transpiles (tools/jest-transform.js), which keeps the suite fast.
    '^.+\\.ts$': '<rootDir>/tools/jest-transform.js',
  },
  // cookie 2.x is ES modules only; fastify's inject needs it (service/test/helpers/cookie-cjs.ts).
  moduleNameMapper: { '^cookie$': '<rootDir>/service/test/helpers/cookie-cjs.ts' },
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 60000,
  maxWorkers: 2,
};
