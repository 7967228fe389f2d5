'use strict';
// Stops the broker the kafka project's global setup started (never one given by KAFKA_BROKERS).
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async function kafkaTeardown() {
  if (process.env.TIDEMARK_KAFKA_STARTED_BY_TESTS !== '1') return;
  execFileSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'kafka'), 'stop'], { stdio: 'inherit', timeout: 60_000 });
};
