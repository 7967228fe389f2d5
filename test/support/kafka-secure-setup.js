'use strict';
// Starts the secured Apache Kafka broker for the `kafka-secure` test project
// (`scripts/kafka start --secure`: SASL_SSL, mutual TLS, ACLs), or uses one that runs
// already, and puts its KAFKA_SECURE_* variables into the environment. A broker that
// cannot start fails the suite: never a skip.
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');

const script = path.join(__dirname, '..', '..', 'scripts', 'kafka');

module.exports = async function kafkaSecureSetup() {
  if (process.env.KAFKA_SECURE_BROKERS) return;
  const running = spawnSync('bash', [script, 'status', '--secure'], { stdio: 'ignore' }).status === 0;
  let out;
  try {
    out = execFileSync('bash', [script, 'start', '--secure'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
  } catch (err) {
    throw new Error(`Could not start the secured Kafka broker for the integration tests (scripts/kafka start --secure): ${err.message}`);
  }
  for (const line of out.trim().split('\n')) {
    const m = /^(KAFKA_SECURE_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) process.env[m[1]] = m[2];
  }
  if (!process.env.KAFKA_SECURE_BROKERS) throw new Error(`scripts/kafka start --secure printed no KAFKA_SECURE_BROKERS:\n${out}`);
  // Stop it afterwards only if this run started it.
  if (!running) process.env.TIDEMARK_KAFKA_SECURE_STARTED_BY_TESTS = '1';
};
