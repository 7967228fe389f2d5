// What the plan's offset look-ups cost on a broker, per look-up of one 8-partition topic:
// kafkajs's admin fetchTopicOffsets as the source uses it (ListOffsets 'latest', then
// 'earliest', one after the other), both requests sent at once on one connection, both on
// two connections, 'latest' alone (what a cached earliest would leave), and the two metadata
// calls of partitions() (listTopics, fetchTopicMetadata). docs/kafka-source.md has the figures.
//
//   KAFKA_BROKERS=host:port node scripts/run-ts.js bench/plan-offsets.ts [rounds]
//
// Alternating, one look-up of each kind per round; medians. The two-request variants reach
// kafkajs's Cluster through its private factory: a measurement, not a code path of tidemark.
import { Kafka, logLevel } from 'kafkajs';

interface Cluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findTopicPartitionMetadata(topic: string): Array<{ partitionId: number }>;
  fetchTopicsOffset(topics: Array<{ topic: string; fromBeginning: boolean; partitions: Array<{ partition: number }> }>): Promise<unknown>;
}

const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
if (brokers.length === 0) throw new Error('set KAFKA_BROKERS=host:port');
const rounds = Number(process.argv[2] ?? 300);
const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
const factory = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
if (!factory) throw new Error("kafkajs's cluster factory is not where this bench expects it");
const newCluster = (): Cluster => (kafka as unknown as Record<symbol, (o: object) => Cluster>)[factory]!({ allowAutoTopicCreation: false });
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

void (async () => {
  const topic = `bench-plan-offsets-${process.pid}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 8 }], waitForLeaders: true });
  const [a, b] = [newCluster(), newCluster()];
  try {
    for (const c of [a, b]) {
      await c.connect();
      await c.addTargetTopic(topic);
    }
    const partitions = (): Array<{ partition: number }> => a.findTopicPartitionMetadata(topic).map((p) => ({ partition: p.partitionId }));
    const ask = (c: Cluster, fromBeginning: boolean): Promise<unknown> => c.fetchTopicsOffset([{ topic, fromBeginning, partitions: partitions() }]);
    const kinds: Array<[string, () => Promise<unknown>]> = [
      ['latest, then earliest (admin.fetchTopicOffsets, used)', () => admin.fetchTopicOffsets(topic)],
      ['both at once, one connection', () => Promise.all([ask(a, false), ask(a, true)])],
      ['both at once, two connections', () => Promise.all([ask(a, false), ask(b, true)])],
      ['latest alone', () => ask(a, false)],
      ['listTopics (partitions())', () => admin.listTopics()],
      ['fetchTopicMetadata (partitions())', () => admin.fetchTopicMetadata({ topics: [topic] })],
    ];
    const ms = kinds.map(() => [] as number[]);
    for (let r = -5; r < rounds; r++) {
      for (const [k, [, f]] of kinds.entries()) {
        const start = process.hrtime.bigint();
        await f();
        if (r >= 0) ms[k]!.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    }
    console.log(`${rounds} alternating rounds, one 8-partition topic on ${brokers.join(',')}`);
    console.log('| look-up | ms, median | used / this, per round (median) |');
    console.log('| --- | ---: | ---: |');
    kinds.forEach(([name], k) => console.log(`| ${name} | ${median(ms[k]!).toFixed(2)} | ${median(ms[0]!.map((t, r) => t / ms[k]![r]!)).toFixed(2)} |`));
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await Promise.all([a.disconnect(), b.disconnect(), admin.disconnect()]);
  }
})();
