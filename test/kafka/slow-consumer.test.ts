// Regression: a consumer of read() that takes its time between chunks (any real
// transform or a busy event loop) lets more fetches land while the reader waits at
// `yield`. The reader once decided "range complete" after the yield, from a position
// those fetches had moved past `until`, and ended the range with the rest of it still in
// its buffer: the batch was committed short (found by the benchmark harness, W1: batch 2
// planned p4 [8192, 18730) and delivered [8192, 9939)).
import { kafkaSource, type Range } from 'tidemark';
import { brokers, closeClients, createTopic, javaPerfProduce, topicOffsets, uniqueTopic } from '../support/kafka';

afterAll(closeClients);

it('returns every record of the ranges to a consumer that pauses after each chunk', async () => {
  const topic = uniqueTopic('slow-consumer');
  await createTopic(topic, 2);
  await javaPerfProduce(topic, 60_000, 200, { 'batch.size': '16384', 'linger.ms': '5' });
  const ends = await topicOffsets(topic);
  // Small fetches: many chunks per range, each a chance for the position to run ahead.
  const source = kafkaSource({ brokers: brokers(), topics: [topic], groupId: `${topic}-job`, consumer: { maxBytesPerPartition: 64 * 1024 } });
  try {
    let from = 0;
    for (const until of [10_000, 20_000]) {
      const ranges: Range[] = [0, 1].map((partition) => ({ topic, partition, from, until: Math.min(until, ends.get(partition)!.high) }));
      const got = new Map<number, number[]>([[0, []], [1, []]]);
      for await (const chunk of source.read(ranges, new AbortController().signal)) {
        for (const r of chunk) got.get(r.partition)!.push(r.offset);
        await new Promise((resolve) => setTimeout(resolve, 20)); // a slow consumer
      }
      for (const r of ranges) {
        const offsets = got.get(r.partition)!;
        expect([r.partition, offsets.length, offsets[0], offsets[offsets.length - 1]]).toEqual([r.partition, r.until - r.from, r.from, r.until - 1]);
        expect(offsets.every((o, i) => o === r.from + i)).toBe(true);
      }
      from = until;
    }
  } finally {
    await source.close();
  }
}, 120_000);
