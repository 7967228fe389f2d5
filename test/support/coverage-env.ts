// Coverage of the code the tests run in child processes (the real `tidemark` binary, a
// job's `require('tidemark')`): jest's global setup names a directory in
// TIDEMARK_CHILD_COVERAGE_DIR when `--coverage` is on, and every spawn of Node in the tests
// passes it on as NODE_V8_COVERAGE. Not set on jest's own processes: their coverage comes
// from the inspector, which NODE_V8_COVERAGE would disturb. scripts/coverage.js merges both.

/** `env` (the test's environment by default) plus NODE_V8_COVERAGE when the run collects coverage. */
export function coverageEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const dir = process.env.TIDEMARK_CHILD_COVERAGE_DIR;
  return dir === undefined ? env : { ...env, NODE_V8_COVERAGE: dir };
}
