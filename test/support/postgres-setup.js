'use strict';
// Starts a throw-away PostgreSQL server for the `postgres` test project (scripts/postgres),
// or uses PG_URL when set. A server that cannot start fails the suite: never a skip.
// The cluster lives in a directory of its own per test run, so two runs never share or
// stop each other's server.
const { execFileSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

module.exports = async function postgresSetup() {
  if (process.env.PG_URL) return;
  const script = path.join(__dirname, '..', '..', 'scripts', 'postgres');
  const dir = path.join(os.tmpdir(), `tidemark-postgres-test-${process.pid}`);
  let out;
  try {
    out = execFileSync('bash', [script, 'start'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 180_000, env: { ...process.env, TIDEMARK_PG_DIR: dir },
    });
  } catch (err) {
    throw new Error(`Could not start the PostgreSQL server for the integration tests (scripts/postgres start): ${err.message}`);
  }
  const lines = out.trim().split('\n');
  process.env.PG_URL = lines[lines.length - 1].trim();
  process.env.TIDEMARK_PG_STARTED_BY_TESTS = dir;
};
