'use strict';
// Stops the secured broker the kafka-secure project's global setup started (never one that
// was running before the tests).
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async function kafkaSecureTeardown() {
  if (process.env.TIDEMARK_KAFKA_SECURE_STARTED_BY_TESTS !== '1') return;
  execFileSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'kafka'), 'stop', '--secure'], { stdio: 'inherit', timeout: 60_000 });
};
