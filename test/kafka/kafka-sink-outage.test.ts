// The broker dies (SIGKILL) during delivery — before a batch's transaction, and in the
// middle of one — and comes back with its data (scripts/kafka restart), on a broker of
// this test's own (the shared one serves other test files). The engine retries with
// backoff, the batch stays staged meanwhile, and a read_committed consumer then sees
// every output exactly once; the dead transaction's records are aborted, never visible.
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { defineJob, Engine, forwardRecord, generatorSource, kafkaSink, type KafkaMessageOut, type Logger } from 'tidemark';
import { readTopic, uniqueTopic } from '../support/kafka';
import { tempDir } from '../support/tmp';
import { duplicates, privateBroker } from './sink-support';

const broker = privateBroker();
const root = tempDir('tidemark-kafka-sink-outage-');

async function createTopic(topic: string, partitions: number): Promise<void> {
  const admin = new Kafka({ clientId: 'outage-test', brokers: broker.brokers(), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** Kills the broker; the logger below restarts it at the engine's first retry warning after that. */
let down = false;
function kill(): void {
  down = true;
  broker.kill();
}

function restartOnRetry(): Logger & { retries: string[] } {
  const retries: string[] = [];
  const noop = () => {};
  return {
    retries, debug: noop, info: noop, error: noop,
    warn: (_obj: object, msg?: string) => {
      if (!msg?.includes('retrying') || !down) return;
      retries.push(msg);
      down = false;
      broker.restart();
    },
  };
}

function job(name: string, topic: string, onMessage: (m: KafkaMessageOut, n: number) => void = () => {}) {
  let mapped = 0;
  return defineJob<KafkaMessageOut>({
    name,
    source: generatorSource({ topic: 'gen', partitions: 2, size: 1500 }),
    sinks: [kafkaSink<KafkaMessageOut>({
      brokers: broker.brokers(), topic, name: 'kafka', maxRequestBytes: 16 * 1024,
      connectionTimeout: 1000, retry: { retries: 2, initialRetryTime: 200 },
      message: (m) => {
        onMessage(m, ++mapped);
        return m;
      },
    })],
    transform: (records) => records.map((r) => forwardRecord(r, { value: `${r.partition}:${r.offset}` })),
    batch: { maxRecordsPerPartition: 250 }, // 6 batches of 500
    sinkAttempts: 30,
  });
}

async function checkExactlyOnce(topic: string): Promise<number> {
  const got = await readTopic(broker.brokers(), topic);
  expect(duplicates(got.map((r) => r.value))).toEqual({});
  expect(got).toHaveLength(3000);
  expect(new Set(got.map((r) => r.headers['tidemark.batch']))).toEqual(new Set(['1', '2', '3', '4', '5', '6']));
  return (await readTopic(broker.brokers(), topic, 'read_uncommitted')).length;
}

it('killed before the transaction of batch 3: retried with backoff until the broker is back, then every output once', async () => {
  const topic = uniqueTopic('outage-before');
  await createTopic(topic, 2);
  const logger = restartOnRetry();
  let crossed = 0;
  const summary = await new Engine(job('outage-before', topic), {
    checkpointDir: join(root, 'before'), logger,
    crashPoint: (phase) => {
      if (phase === 'delivering:kafka' && ++crossed === 3) kill();
    },
  }).run({ once: true });
  expect(summary.lastCommitted).toBe(6);
  expect(logger.retries.length).toBeGreaterThanOrEqual(1);
  expect(await checkExactlyOnce(topic)).toBe(3000);
}, 300_000);

it('killed in the middle of the transaction of batch 4: the open transaction is aborted, the retry writes the batch once', async () => {
  const topic = uniqueTopic('outage-mid');
  await createTopic(topic, 2);
  const logger = restartOnRetry();
  let killed = false;
  const summary = await new Engine(job('outage-mid', topic, (_m, n) => {
    // The 300th output of batch 4: a few produce requests of this transaction are on the broker.
    if (n === 3 * 500 + 300 && !killed) {
      killed = true;
      kill();
    }
  }), { checkpointDir: join(root, 'mid'), logger }).run({ once: true });
  expect(killed).toBe(true);
  expect(summary.lastCommitted).toBe(6);
  expect(logger.retries.length).toBeGreaterThanOrEqual(1);
  // read_uncommitted also shows the records of the transaction that died with the broker.
  expect(await checkExactlyOnce(topic)).toBeGreaterThan(3000);
}, 300_000);
