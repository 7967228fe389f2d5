// CommonJS + a ten-line esbuild transform: jest's native ESM mode is still
// experimental, ts-jest type-checks on every run (slow; `npm run typecheck` does that
// once), and esbuild is already a dependency. See README "Why CommonJS".
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': '<rootDir>/scripts/jest-transform.js' },
  moduleNameMapper: { '^tidemark$': '<rootDir>/src/index.ts' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/support/global-setup.js',
  testTimeout: 60_000,
  maxWorkers: 2,
};
