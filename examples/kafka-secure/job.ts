// Kafka → Kafka over TLS with SASL (or a client certificate), every secret from the
// environment: the job file is where connection settings live, and it reads them when the
// job starts, so no password, key or token is written into the file, the bundle tidemark
// hashes, the checkpoint or the logs. See README.md beside this file.
//
//   KAFKA_BROKERS=broker:9093 KAFKA_CA_FILE=ca.pem KAFKA_SASL_USERNAME=tidemark KAFKA_SASL_PASSWORD=… \
//     TOPIC=clicks OUT_TOPIC=clicks-upper npx tidemark run examples/kafka-secure/job.ts
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SASLOptions } from 'kafkajs';
import { BadConfigError, defineJob, forwardRecord, kafkaSink, kafkaSource, type KafkaConnectionOptions, type KafkaMessageOut } from 'tidemark';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new BadConfigError(`examples/kafka-secure: set ${name}.`);
  return value;
}

/** A PEM file named by a variable (a CA, a client certificate or its key), or nothing when the variable is unset. */
function pem(name: string): Buffer | undefined {
  const path = process.env[name];
  return path ? readFileSync(path) : undefined;
}

/** SASL from KAFKA_SASL_MECHANISM (default scram-sha-512), KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD; none without a user name (mutual TLS). */
function sasl(): SASLOptions | undefined {
  const username = process.env.KAFKA_SASL_USERNAME;
  if (!username) return undefined;
  const password = required('KAFKA_SASL_PASSWORD');
  const mechanism = process.env.KAFKA_SASL_MECHANISM ?? 'scram-sha-512';
  if (mechanism !== 'plain' && mechanism !== 'scram-sha-256' && mechanism !== 'scram-sha-512') {
    throw new BadConfigError(`examples/kafka-secure: KAFKA_SASL_MECHANISM must be plain, scram-sha-256 or scram-sha-512; got ${JSON.stringify(mechanism)}.`);
  }
  return { mechanism, username, password };
}

const ca = pem('KAFKA_CA_FILE');
const cert = pem('KAFKA_CLIENT_CERT_FILE');
const key = pem('KAFKA_CLIENT_KEY_FILE');
const auth = sasl();
const connection: KafkaConnectionOptions = {
  brokers: required('KAFKA_BROKERS').split(','),
  // TLS always; without KAFKA_CA_FILE the server's certificate must chain to a CA Node trusts.
  ssl: { ...(ca ? { ca: [ca] } : {}), ...(cert && key ? { cert, key } : {}) },
  ...(auth ? { sasl: auth } : {}),
};
const name = process.env.JOB_NAME ?? 'kafka-secure';

export default defineJob<KafkaMessageOut>({
  name,
  source: kafkaSource({ ...connection, topics: [required('TOPIC')], groupId: process.env.GROUP_ID ?? name }),
  transform: (records) => records.map((r) => forwardRecord(r, { value: r.value === null ? null : r.value.toString().toUpperCase() })),
  // Transactional: the transactional id is tidemark.<job>.upper, the ledger group tidemark.<job>.upper.ledger.
  sinks: [kafkaSink<KafkaMessageOut>({ ...connection, name: 'upper', topic: required('OUT_TOPIC') })],
  batch: { maxRecordsPerPartition: 10_000, maxWaitMs: 500 },
  checkpoint: { dir: process.env.CHECKPOINT_DIR ?? join(__dirname, '..', '..', 'data', 'kafka-secure', 'checkpoint') },
});
