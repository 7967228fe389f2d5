'use strict';
// Stops the broker the kafka project's global setup started (never one given by
// KAFKA_BROKERS, nor one that was running before the tests).
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async function kafkaTeardown() {
  if (process.env.TIDEMARK_KAFKA_STARTED_BY_TESTS !== '1') return;
  const env = { ...process.env };
  delete env.KAFKA_BROKERS; // set by the setup; with it, scripts/kafka would leave the broker alone
  execFileSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'kafka'), 'stop'], { stdio: 'inherit', timeout: 60_000, env });
};
