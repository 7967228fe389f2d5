'use strict';
// Starts one Apache Kafka broker for the `kafka` test project (scripts/kafka), or uses
// KAFKA_BROKERS when set, or a broker scripts/kafka already runs. A broker that cannot
// start fails the suite: never a skip.
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');

const script = path.join(__dirname, '..', '..', 'scripts', 'kafka');

module.exports = async function kafkaSetup() {
  if (process.env.KAFKA_BROKERS) return;
  const running = spawnSync('bash', [script, 'status'], { stdio: 'ignore' }).status === 0;
  let out;
  try {
    out = execFileSync('bash', [script, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
  } catch (err) {
    throw new Error(`Could not start the Kafka broker for the integration tests (scripts/kafka start): ${err.message}`);
  }
  const lines = out.trim().split('\n');
  process.env.KAFKA_BROKERS = lines[lines.length - 1].trim();
  // Stop it afterwards only if this run started it.
  if (!running) process.env.TIDEMARK_KAFKA_STARTED_BY_TESTS = '1';
};
