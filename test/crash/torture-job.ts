// The job the crash-torture driver kills, configured by environment variables:
//   TORTURE_DIR     where the embedded log (if used) and the file sink live
//   TORTURE_SOURCE  'embedded' (default) or 'kafka' (then KAFKA_BROKERS and TORTURE_TOPIC)
//   TORTURE_BATCH   records per partition per batch (default 200)
// The transform is non-deterministic on purpose (a random execution id and the time in
// every output): staged outputs must make even that exactly-once.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import * as tidemark from 'tidemark';
import { defineJob, embeddedLogSource, fileSink, type Source } from 'tidemark';

const dir = process.env.TORTURE_DIR ?? '/tmp/tidemark-torture';

function source(): Source {
  if (process.env.TORTURE_SOURCE === 'kafka') {
    // Looked up at run time so this job builds before the Kafka source exists.
    const kafkaSource = (tidemark as unknown as Record<string, (o: object) => Source>).kafkaSource!;
    return kafkaSource({
      brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
      topics: [process.env.TORTURE_TOPIC ?? 'torture'],
      groupId: `tidemark-torture-${process.env.TORTURE_TOPIC ?? 'torture'}`,
      startingOffsets: 'earliest',
      // The broker's minimum: after a SIGKILL the restart waits for the dead member's session to expire.
      consumer: { sessionTimeout: 6_000 },
    });
  }
  return embeddedLogSource({ dir: join(dir, 'log'), topic: 'torture', partitions: 4 });
}

export interface TortureOutput {
  readonly p: number;
  readonly o: number;
  readonly v: string;
  readonly execution: string;
  readonly at: number;
}

export default defineJob<TortureOutput>({
  name: 'torture',
  source: source(),
  sinks: [fileSink({ dir: join(dir, 'out'), name: 'files' })],
  transform(records) {
    const execution = randomUUID();
    const at = Date.now();
    return records.map((r) => ({ p: r.partition, o: r.offset, v: r.value?.toString() ?? '', execution, at }));
  },
  batch: { maxRecordsPerPartition: Number(process.env.TORTURE_BATCH ?? 200), maxWaitMs: 20, pollIntervalMs: 20 },
});
