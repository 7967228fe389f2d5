// The job the group-mode tests run N times (scaleOut 'group'), configured by environment
// variables:
//   KAFKA_BROKERS, GROUP_TOPIC   the broker and the input topic
//   GROUP_ID                     the job's consumer group (default `tidemark-group-<topic>`)
//   GROUP_OUT                    the file sink's directory (its files: one per partition range)
//   GROUP_PG_URL, GROUP_PG_SCHEMA  also write every output to table `group_out` of that schema (PostgreSQL sink `postgres`)
//   GROUP_BATCH                  records per partition per batch (default 100)
//   GROUP_MAX_IN_FLIGHT          batch.maxInFlight (default: the job default, 2)
//   GROUP_SESSION_MS             the membership's session timeout (default 6000, the broker's minimum)
//   GROUP_KAFKA_SINK_TOPIC       also produce every output there with the Kafka sink (named `kafka`)
//   GROUP_EPOCH_BASE             the job's groupEpochBase (default 0; test/kafka/group-state-lost.test.ts)
// The transform is deterministic (group mode's exactly-once holds for every sink across a
// handoff only for those, docs/scale-out.md); each output names its input.
import { basename, join } from 'node:path';
import { defineJob, fileSink, kafkaSink, kafkaSource, postgresSink, type Sink } from 'tidemark';

const topic = process.env.GROUP_TOPIC ?? 'group';

export interface GroupOutput {
  readonly p: number;
  readonly o: number;
  readonly v: string;
}

function sinks(): Array<Sink<GroupOutput>> {
  // The file sink in group mode: one file per partition range in GROUP_OUT, `part-<topic>-<partition>-<from>-<until>.jsonl`.
  const out = process.env.GROUP_OUT ?? '/tmp/tidemark-group/out';
  const list: Array<Sink<GroupOutput>> = [fileSink<GroupOutput>({ dir: join(out, '..'), name: basename(out) })];
  if (process.env.GROUP_PG_URL) {
    list.push(postgresSink<GroupOutput>({
      name: 'postgres', connection: { connectionString: process.env.GROUP_PG_URL, options: `-c search_path=${process.env.GROUP_PG_SCHEMA ?? 'public'}` },
      table: 'group_out', columns: ['p', 'o', 'v'], row: (t) => [t.p, t.o, t.v],
    }));
  }
  if (process.env.GROUP_KAFKA_SINK_TOPIC) {
    list.push(kafkaSink<GroupOutput>({
      name: 'kafka', brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), topic: process.env.GROUP_KAFKA_SINK_TOPIC,
      message: (o) => ({ key: `${o.p}`, value: JSON.stringify(o) }),
    }));
  }
  return list;
}

export default defineJob<GroupOutput>({
  name: 'group',
  scaleOut: 'group',
  ...(process.env.GROUP_EPOCH_BASE ? { groupEpochBase: Number(process.env.GROUP_EPOCH_BASE) } : {}),
  source: kafkaSource({
    brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    topics: [topic],
    groupId: process.env.GROUP_ID ?? `tidemark-group-${topic}`,
    startingOffsets: 'earliest',
    consumer: { sessionTimeout: Number(process.env.GROUP_SESSION_MS ?? 6_000) },
  }),
  sinks: sinks(),
  transform: (records) => records.map((r) => ({ p: r.partition, o: r.offset, v: r.value?.toString() ?? '' })),
  batch: {
    maxRecordsPerPartition: Number(process.env.GROUP_BATCH ?? 100), maxWaitMs: 20, pollIntervalMs: 50,
    ...(process.env.GROUP_MAX_IN_FLIGHT ? { maxInFlight: Number(process.env.GROUP_MAX_IN_FLIGHT) } : {}),
  },
});
