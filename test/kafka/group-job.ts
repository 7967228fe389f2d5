// The job the group-mode tests run N times (scaleOut 'group'), configured by environment
// variables:
//   KAFKA_BROKERS, GROUP_TOPIC   the broker and the input topic
//   GROUP_ID                     the job's consumer group (default `tidemark-group-<topic>`)
//   GROUP_OUT                    the directory of the range-file sink
//   GROUP_BATCH                  records per partition per batch (default 100)
//   GROUP_SESSION_MS             the membership's session timeout (default 6000, the broker's minimum)
//   GROUP_KAFKA_SINK_TOPIC       also produce every output there with the Kafka sink (named `kafka`)
// The transform is deterministic (group mode's exactly-once holds for every sink across a
// handoff only for those, docs/scale-out.md); each output names its input.
import { link, mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineJob, kafkaSink, kafkaSource, type Sink } from 'tidemark';

const topic = process.env.GROUP_TOPIC ?? 'group';

export interface GroupOutput {
  readonly p: number;
  readonly o: number;
  readonly v: string;
}

/**
 * One file per partition range, published without replacing (link(2), EEXIST: that range is
 * there already): a range run again by another owner adds nothing.
 */
function rangeFiles(dir: string): Sink<GroupOutput> {
  return {
    name: 'ranges',
    async write(batch) {
      await mkdir(dir, { recursive: true });
      for (const r of batch.ranges) {
        const path = join(dir, `part-${r.topic}-${r.partition}-${r.from}-${r.until}.jsonl`);
        const tmp = `${path}.${process.pid}.tmp`;
        await writeFile(tmp, batch.outputs.map((o) => JSON.stringify(o)).join('\n'));
        try {
          await link(tmp, path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        } finally {
          await unlink(tmp);
        }
      }
    },
  };
}

function sinks(): Array<Sink<GroupOutput>> {
  const list = [rangeFiles(process.env.GROUP_OUT ?? '/tmp/tidemark-group-out')];
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
  source: kafkaSource({
    brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    topics: [topic],
    groupId: process.env.GROUP_ID ?? `tidemark-group-${topic}`,
    startingOffsets: 'earliest',
    consumer: { sessionTimeout: Number(process.env.GROUP_SESSION_MS ?? 6_000) },
  }),
  sinks: sinks(),
  transform: (records) => records.map((r) => ({ p: r.partition, o: r.offset, v: r.value?.toString() ?? '' })),
  batch: { maxRecordsPerPartition: Number(process.env.GROUP_BATCH ?? 100), maxWaitMs: 20, pollIntervalMs: 50 },
});
