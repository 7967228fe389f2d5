// The broker killed (SIGKILL) and restarted while a job runs, once in the middle of a
// read and once while a batch is being delivered: the job rides it out (retry with
// backoff) and its output is exact: no record lost, none twice.
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { defineJob, Engine, kafkaSource, type Range, type Source, type SourceRecord } from 'tidemark';
import { waitForLeaders } from '../support/kafka';
import { ownBrokerForSuite } from '../support/kafka-broker';

describe('kafkaSource across a broker restart', () => {
  const { root, broker } = ownBrokerForSuite();

  it('kill -9 mid-read and mid-delivery, restart: every record exactly once', async () => {
    const kafka = new Kafka({ clientId: 'restart-test', brokers: [broker.address], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const topic = 'restart';
    await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] });
    await waitForLeaders(admin, topic, 4);
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const perPartition = 3000;
    for (let p = 0; p < 4; p++) {
      for (let i = 0; i < perPartition; i += 500) {
        await producer.send({ topic, acks: -1, messages: Array.from({ length: 500 }, (_, j) => ({ value: `${p}:${i + j}:${'x'.repeat(180)}`, partition: p })) });
      }
    }
    await producer.disconnect();
    await admin.disconnect();

    const source = kafkaSource({ brokers: [broker.address], topics: [topic], groupId: 'restart-job', consumer: { maxBytesPerPartition: 16 * 1024 } });
    const restarts: Array<Promise<void>> = [];
    const killAndRestart = (): void => {
      broker.kill9();
      restarts.push(broker.restart());
    };
    let reads = 0;
    // The real source, with a kill after the first chunk of the second read.
    const killing: Source = {
      ...source,
      async *read(ranges: readonly Range[], signal: AbortSignal) {
        const n = ++reads;
        let chunks = 0;
        for await (const chunk of source.read(ranges, signal)) {
          yield chunk;
          if (n === 2 && ++chunks === 1) killAndRestart();
        }
      },
    };
    const delivered = new Map<number, string[]>();
    const engine = new Engine(defineJob<string>({
      name: 'restart', source: killing, stageOutputs: true,
      transform: (records: SourceRecord[]) => records.map((r) => `${r.partition}@${r.offset}=${r.value!.toString().split(':').slice(0, 2).join(':')}`),
      sinks: [{
        name: 'collect',
        async write(batch) {
          delivered.set(batch.id, [...batch.outputs]);
          if (batch.id === 4 && restarts.length === 1) {
            await restarts[0]; // the first restart is done: kill it again, now between stage and commit
            killAndRestart();
          }
        },
      }],
      batch: { maxRecordsPerPartition: 500, maxWaitMs: 0 },
    }), { checkpointDir: join(root, 'cp') });
    const summary = await engine.run({ once: true });
    await Promise.all(restarts);
    expect(restarts.length).toBe(2);

    expect(summary.positions).toEqual(Object.fromEntries([0, 1, 2, 3].map((p) => [`${topic}/${p}`, perPartition])));
    const all = [...delivered.keys()].sort((a, b) => a - b).flatMap((id) => delivered.get(id)!);
    expect(all.length).toBe(4 * perPartition);
    for (let p = 0; p < 4; p++) {
      expect(all.filter((l) => l.startsWith(`${p}@`))).toEqual(Array.from({ length: perPartition }, (_, i) => `${p}@${i}=${p}:${i}`));
    }
    expect(source.stats().groupJoins).toBeGreaterThanOrEqual(2); // the consumer rejoined after a restart
  });
});
