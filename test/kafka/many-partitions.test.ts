// Regression: with 8 busy partitions a fetch response's byte budget can run out before the
// last partitions, and the broker answers "nothing" for them although they hold records.
// The reader once took two such answers as the end of a range and committed the position
// past records it never delivered (bench/results/2026-11-23-kafka-source-short-read.txt).
import { join } from 'node:path';
import { closeClients, createTopic, javaPerfProduce, runKafkaJob, topicOffsets, uniqueTopic } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);
const root = tempDir();

it('reads every record of 8 busy partitions, whatever the fetch responses leave out', async () => {
  const topic = uniqueTopic('eight');
  await createTopic(topic, 8);
  await javaPerfProduce(topic, 200_000, 200, { 'batch.size': '65536', 'linger.ms': '20' });
  const ends = await topicOffsets(topic);
  const total = [...ends.values()].reduce((n, o) => n + o.high, 0);
  expect(total).toBe(200_000);
  for (let round = 0; round < 2; round++) {
    const run = await runKafkaJob(join(root, `cp-${round}`), { topics: [topic], groupId: `${topic}-${round}`, consumer: { maxBytes: 1024 * 1024 } },
      { once: true }, { batch: { maxRecordsPerPartition: 10_000 } });
    // Grouped by pushing: copying each partition's list per record was quadratic (25,000
    // records a partition: minutes of the test's time, and its timeout under load).
    const byPartition = new Map<number, number[]>();
    for (const r of run.records.flat()) {
      const offsets = byPartition.get(r.partition);
      if (offsets) offsets.push(r.offset);
      else byPartition.set(r.partition, [r.offset]);
    }
    for (const [p, { high }] of ends) {
      const offsets = byPartition.get(p) ?? [];
      // Every offset of the partition, once, in order.
      expect([p, offsets.length, offsets[0], offsets[offsets.length - 1]]).toEqual([p, high, 0, high - 1]);
      expect(offsets.every((o, i) => o === i)).toBe(true);
    }
  }
}, 300_000);
