// Kafka topic → one file per batch, exactly once. Every record becomes a JSON line; kill
// the job at any moment (kill -9 too) and start it again: each batch file appears once,
// with the same lines, no offset skipped, none twice. See README.md beside this file.
//
//   KAFKA_BROKERS=127.0.0.1:9092 TOPIC=clicks npx tidemark run examples/kafka-to-files/job.ts
import { join } from 'node:path';
import { defineJob, fileSink, kafkaSource } from 'tidemark';

const data = process.env.KAFKA_TO_FILES_DATA ?? join(__dirname, '..', '..', 'data', 'kafka-to-files');
const topic = process.env.TOPIC ?? 'clicks';
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export interface Line {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: string | null;
  readonly timestamp: number;
}

export default defineJob<Line>({
  name: 'kafka-to-files',
  source: kafkaSource({
    brokers,
    topics: [topic],
    // Positions are committed here after every batch: `kafka-consumer-groups --describe --group kafka-to-files` shows the lag.
    groupId: 'kafka-to-files',
    startingOffsets: 'earliest',
    // TLS and SASL go to kafkajs unchanged, e.g.:
    // ssl: { ca: [readFileSync('ca.pem', 'utf8')] },
    // sasl: { mechanism: 'scram-sha-512', username: 'tidemark', password: process.env.KAFKA_PASSWORD! },
  }),
  sinks: [fileSink({ dir: join(data, 'out'), name: topic })],
  transform: (records) => records.map((r) => ({
    partition: r.partition, offset: r.offset, key: r.key?.toString() ?? null, value: r.value?.toString() ?? null, timestamp: r.timestamp,
  })),
  batch: { maxRecordsPerPartition: 50_000, maxWaitMs: 1_000 },
  checkpoint: { dir: join(data, 'checkpoint') },
});
