// Kafka read rate: a raw kafkajs eachBatch consumer against tidemark on the same topic of
// 200-byte records, in one run (npm run bench:kafka).
//
//   KAFKA_BROKERS=host:port   use this broker (default: `scripts/kafka start`)
//   RECORDS=1000000           records to read (written once by Kafka's producer-perf-test)
//   PARTITIONS=4
//   MAX_PER_PARTITION=100000  the job's batch.maxRecordsPerPartition
//
// The raw consumer does nothing per record; tidemark runs a whole job: plan, read, a
// transform that counts, the checkpoint (PLAN, STAGE with fsync, COMMIT per batch), a sink
// that does nothing, and the group offset commit. stageOutputs is off (the transform's
// outputs are tiny either way), so the figure is the source plus the protocol.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { defineJob, Engine, kafkaSource, type SourceRecord } from '../src/index';
import { registerKafkaCodecs } from '../src/kafka/codecs';

const root = join(__dirname, '..', '..');
const RECORDS = Number(process.env.RECORDS ?? 1_000_000);
const PARTITIONS = Number(process.env.PARTITIONS ?? 4);
const SIZE = 200;

function broker(): string {
  if (process.env.KAFKA_BROKERS) return process.env.KAFKA_BROKERS;
  const out = execFileSync('bash', [join(root, 'scripts', 'kafka'), 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim().split('\n').pop()!.trim();
}

async function main(): Promise<void> {
  const brokers = [broker()];
  const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `bench-rate-${RECORDS}-${PARTITIONS}`;
  const existing = await admin.listTopics();
  const total = async (): Promise<number> => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  if (!existing.includes(topic) || (await total()) < RECORDS) {
    if (!existing.includes(topic)) await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
    const missing = RECORDS - (await total());
    console.log(`writing ${missing} records of ${SIZE} bytes to ${topic} with kafka-producer-perf-test …`);
    execFileSync('bash', [join(root, 'scripts', 'kafka'), 'tool', 'producer-perf-test', '--bootstrap-server', brokers[0]!, '--topic', topic,
      '--num-records', String(missing), '--record-size', String(SIZE), '--throughput', '-1', '--command-property', 'acks=1', 'linger.ms=10', 'batch.size=65536'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const n = await total();
  await admin.disconnect();
  registerKafkaCodecs();

  // 1. Raw kafkajs: one consumer, eachBatch, count.
  const consumer = kafka.consumer({ groupId: `bench-raw-${Date.now()}`, maxBytesPerPartition: 2 * 1024 * 1024, maxBytes: 50 * 1024 * 1024, maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  let rawStart = 0;
  const rawDone = new Promise<number>((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (rawStart === 0) rawStart = Date.now();
        seen += batch.messages.length;
        if (seen >= n) resolve(Date.now());
      },
    });
  });
  const rawEnd = await rawDone;
  await consumer.disconnect();
  const rawRate = n / ((rawEnd - rawStart) / 1000);

  // 2. tidemark: the same topic, a whole job.
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
  let counted = 0;
  let tmStart = 0;
  const engine = new Engine(defineJob<number>({
    name: 'bench',
    source: kafkaSource({ brokers, topics: [topic], groupId: `bench-tidemark-${Date.now()}` }),
    sinks: [{ name: 'none', write: async () => {} }],
    transform: (records: SourceRecord[]) => {
      if (tmStart === 0) tmStart = Date.now();
      counted += records.length;
      return [records.length];
    },
    stageOutputs: false,
    batch: { maxRecordsPerPartition: Number(process.env.MAX_PER_PARTITION ?? 100_000), maxWaitMs: 0 },
  }), { checkpointDir: join(dir, 'cp') });
  const started = Date.now();
  const summary = await engine.run({ once: true });
  const ended = Date.now();
  rmSync(dir, { recursive: true, force: true });
  if (counted !== n) throw new Error(`tidemark read ${counted} records, expected ${n}`);
  const tmRate = n / ((ended - started) / 1000);

  const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
  console.log(`topic ${topic}: ${fmt(n)} records of ${SIZE} bytes, ${PARTITIONS} partitions, broker ${brokers[0]}`);
  console.log(`raw kafkajs eachBatch (first batch → last): ${fmt(rawRate)} records/s`);
  console.log(`tidemark job (start → end, ${summary.batches} batches, checkpoint on): ${fmt(tmRate)} records/s (${((100 * tmRate) / rawRate).toFixed(0)} % of raw)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
