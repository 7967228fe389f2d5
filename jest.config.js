// CommonJS + a ten-line esbuild transform: jest's native ESM mode is still
// experimental, ts-jest type-checks on every run (slow; `npm run typecheck` does that
// once), and esbuild is already a dependency. See README "Why CommonJS".
//
// Four projects: `core` needs nothing but Node; `kafka` needs a broker, which its own
// global setup starts (scripts/kafka); `kafka-secure` needs the secured broker (TLS, SASL,
// ACLs: scripts/kafka start --secure), started the same way; `postgres` needs a PostgreSQL
// server, which its own global setup starts (scripts/postgres) — jest runs a project's
// global setup only when one of its tests is selected, so `npx jest test/unit` never waits for any.
const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': '<rootDir>/scripts/jest-transform.js' },
  moduleNameMapper: { '^tidemark$': '<rootDir>/src/index.ts', '^tidemark/testing$': '<rootDir>/src/testing.ts' },
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 120_000,
  maxWorkers: 2,
  // Coverage (`--coverage`, which CI passes: .ci/run): V8's own counters, so it needs no
  // instrumenting transform (ours is esbuild), mapped back to the TypeScript through the
  // transform's inline source maps. Code that runs in child processes (the real `tidemark`
  // binary the CLI and crash tests spawn) is collected by the global setup's NODE_V8_COVERAGE
  // directory and merged with this (`json`) by scripts/coverage.js, which holds the
  // thresholds: jest's own would judge without the children and fail the run first.
  coverageProvider: 'v8',
  // Files of types only have no code to run, but V8 would count their lines as never run; nor
  // would it see the status page's browser code run (in chromium: test/cli/status-page.test.ts).
  collectCoverageFrom: ['checkpoint/**/*.ts', 'recovery/**/*.ts', 'src/**/*.ts', '!**/*.d.ts', '!src/contracts.ts', '!src/status-page/**'],
  coverageReporters: ['text-summary', 'json'],
  globalSetup: '<rootDir>/test/support/global-setup.js',
  projects: [
    { ...shared, displayName: 'core', testMatch: ['<rootDir>/test/**/*.test.ts'], testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/kafka/', '<rootDir>/test/kafka-secure/', '<rootDir>/test/postgres/'] },
    {
      ...shared, displayName: 'kafka', testMatch: ['<rootDir>/test/kafka/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/kafka-setup.js', globalTeardown: '<rootDir>/test/support/kafka-teardown.js',
    },
    {
      ...shared, displayName: 'kafka-secure', testMatch: ['<rootDir>/test/kafka-secure/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/kafka-secure-setup.js', globalTeardown: '<rootDir>/test/support/kafka-secure-teardown.js',
    },
    {
      ...shared, displayName: 'postgres', testMatch: ['<rootDir>/test/postgres/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/postgres-setup.js', globalTeardown: '<rootDir>/test/support/postgres-teardown.js',
    },
  ],
};
