// The job the crash-torture driver kills, configured by environment variables:
//   TORTURE_DIR     where the embedded log (if used) and the file sink live
//   TORTURE_SOURCE  'embedded' (default) or 'kafka' (then KAFKA_BROKERS and TORTURE_TOPIC)
//   TORTURE_BATCH   records per partition per batch (default 200)
//   TORTURE_PG_URL, TORTURE_PG_SCHEMA   also write every output to table `torture_out` of that
//                   schema with the PostgreSQL sink (named `postgres`)
//   TORTURE_KAFKA_SINK_TOPIC            also produce every output to that topic with the Kafka
//                   sink (named `kafka`; brokers from KAFKA_BROKERS)
//   TORTURE_ROLLING also write every output with the rolling file sink (named `rolling`, under
//                   TORTURE_DIR/out) in gzipped parts of about that many bytes
// The transform is non-deterministic on purpose (a random execution id and the time in
// every output): staged outputs must make even that exactly-once.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import * as tidemark from 'tidemark';
import { defineJob, embeddedLogSource, fileSink, kafkaSink, postgresSink, rollingFileSink, type Sink, type Source } from 'tidemark';

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

function sinks(): Array<Sink<TortureOutput>> {
  const list: Array<Sink<TortureOutput>> = [fileSink({ dir: join(dir, 'out'), name: 'files' })];
  if (process.env.TORTURE_PG_URL) {
    list.push(postgresSink<TortureOutput>({
      name: 'postgres', connection: { connectionString: process.env.TORTURE_PG_URL, options: `-c search_path=${process.env.TORTURE_PG_SCHEMA ?? 'public'}` },
      table: 'torture_out', columns: ['p', 'o', 'v', 'execution'], row: (t) => [t.p, t.o, t.v, t.execution],
    }));
  }
  if (process.env.TORTURE_KAFKA_SINK_TOPIC) {
    list.push(kafkaSink<TortureOutput>({
      name: 'kafka', brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), topic: process.env.TORTURE_KAFKA_SINK_TOPIC,
      // One transactional id per run (its topic is fresh): two tortures on one broker — the CI
      // form and the long one — must not fence each other's producer (seen 2026-11-30: exit 10).
      transactionalId: `tidemark.torture.${process.env.TORTURE_KAFKA_SINK_TOPIC}`,
      message: (t) => ({ key: `${t.p}:${t.o}`, value: JSON.stringify({ p: t.p, o: t.o, v: t.v, execution: t.execution }) }),
    }));
  }
  if (process.env.TORTURE_ROLLING) {
    list.push(rollingFileSink<TortureOutput>({ dir: join(dir, 'out'), name: 'rolling', maxPartBytes: Number(process.env.TORTURE_ROLLING), gzip: true }));
  }
  return list;
}

export default defineJob<TortureOutput>({
  name: 'torture',
  source: source(),
  sinks: sinks(),
  transform(records) {
    const execution = randomUUID();
    const at = Date.now();
    return records.map((r) => ({ p: r.partition, o: r.offset, v: r.value?.toString() ?? '', execution, at }));
  },
  batch: { maxRecordsPerPartition: Number(process.env.TORTURE_BATCH ?? 200), maxWaitMs: 20, pollIntervalMs: 20 },
});
