'use strict';
// Stops the server the postgres project's global setup started (never one given by PG_URL).
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async function postgresTeardown() {
  const dir = process.env.TIDEMARK_PG_STARTED_BY_TESTS;
  if (!dir) return;
  const env = { ...process.env, TIDEMARK_PG_DIR: dir };
  delete env.PG_URL;
  execFileSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'postgres'), 'stop'], { stdio: 'inherit', timeout: 60_000, env });
};
