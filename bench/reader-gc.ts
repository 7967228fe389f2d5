// Garbage per record in the Kafka reader alone: reads 1 M × 200 B records (8 partitions) from
// a topic on a broker through kafkaSource() as the engine does (readRanges, batches of 16,384
// records per partition, ~26 MB), and prints wall, CPU and GC time (perf_hooks' 'gc' entries).
// One read per process, so that two builds can alternate:
//
//   KAFKA_BROKERS=host:port node scripts/run-ts.js bench/reader-gc.ts [--allocated]
//
// --allocated adds the MB allocated during the read, by V8's sampling heap profiler with the
// objects GC collected included: unlike GC time it hardly moves with the machine's load.
// The topic (bench-reader-1000000x200-8p) is written once with kafka-producer-perf-test and
// kept; each read is by a fresh consumer group.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { Kafka, logLevel } from 'kafkajs';
import { readRanges, RecordSizes } from '../src/batch-run';
import { kafkaSource, type Range } from '../src/index';

const RECORDS = 1_000_000;
const SIZE = 200;
const PARTITIONS = 8;
const BATCH_PER_PARTITION = 16_384;
const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
if (brokers.length === 0) throw new Error('set KAFKA_BROKERS=host:port');
const topic = `bench-reader-${RECORDS}x${SIZE}-${PARTITIONS}p`;

let gcMs = 0;
let gcCount = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    gcCount++;
  }
}).observe({ entryTypes: ['gc'] });

void (async () => {
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const total = async (): Promise<number> => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  if (!(await admin.listTopics()).includes(topic)) await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  const missing = RECORDS - (await total());
  if (missing > 0) {
    console.error(`writing ${missing} records of ${SIZE} bytes to ${topic} …`);
    execFileSync('bash', [join(__dirname, '..', 'scripts', 'kafka'), 'tool', 'producer-perf-test', '--bootstrap-server', brokers[0]!, '--topic', topic,
      '--num-records', String(missing), '--record-size', String(SIZE), '--throughput', '-1', '--command-property', 'acks=1', 'linger.ms=10', 'batch.size=65536'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const ranges: Range[] = (await admin.fetchTopicOffsets(topic)).map((p) => ({ topic, partition: p.partition, from: Number(p.low), until: Number(p.high) }));
  await admin.disconnect();

  const source = kafkaSource({ brokers, topics: [topic], groupId: `bench-reader-gc-${process.pid}-${Date.now()}` });
  const gcBefore = gcMs;
  const gcCountBefore = gcCount;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const session = process.argv.includes('--allocated') ? new Session() : undefined;
  session?.connect();
  await session?.post('HeapProfiler.startSampling', { samplingInterval: 32_768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const sizes = new RecordSizes();
  let records = 0;
  for (let from = 0; ranges.some((r) => r.from + from < r.until); from += BATCH_PER_PARTITION) {
    const batch = ranges.map((r) => ({ ...r, from: Math.min(r.from + from, r.until), until: Math.min(r.from + from + BATCH_PER_PARTITION, r.until) }));
    records += (await readRanges(source, batch, sizes)).records.length;
  }
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  const used = process.cpuUsage(cpu);
  let allocatedMB: number | undefined;
  if (session) {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let bytes = 0;
    const add = (node: typeof profile.head): void => {
      bytes += node.selfSize;
      node.children.forEach(add);
    };
    add(profile.head);
    allocatedMB = Math.round(bytes / 1e6);
    session.disconnect();
  }
  await new Promise((resolve) => setTimeout(resolve, 50)); // the observer reports asynchronously
  await source.close();
  console.log(JSON.stringify({ records, wallMs: Math.round(wallMs), cpuMs: Math.round((used.user + used.system) / 1000), gcMs: Math.round(gcMs - gcBefore), gcs: gcCount - gcCountBefore, allocatedMB }));
})();
