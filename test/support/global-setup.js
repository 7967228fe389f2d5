'use strict';
// Builds dist/ once so that tests running the real `tidemark` binary never run stale code.
// With `--coverage`, names an empty directory for the V8 coverage of the child processes
// (test/support/coverage-env.ts passes it on; scripts/coverage.js merges it with jest's).
const fs = require('node:fs');
const path = require('node:path');

module.exports = async function globalSetup(globalConfig) {
  require('../../scripts/build.js');
  if (globalConfig.collectCoverage) {
    const dir = path.join(globalConfig.coverageDirectory, 'children');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    // Inherited by jest's workers, which start after the global setup.
    process.env.TIDEMARK_CHILD_COVERAGE_DIR = dir;
  }
};
