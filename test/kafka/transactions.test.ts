// Sparse offsets from transactions: commit markers occupy offsets, aborted records are
// filtered under read_committed, and an open transaction bounds "latest" (the last stable
// offset). Ranges end on positions, never on record counts.
import { join } from 'node:path';
import type { Producer } from 'kafkajs';
import { closeClients, createTopic, javaPerfProduce, produce, producer, runKafkaJob, topicOffsets, uniqueTopic } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

async function txn(p: Producer, topic: string, values: string[], end: 'commit' | 'abort' | 'open'): Promise<() => Promise<void>> {
  const t = await p.transaction();
  await t.send({ topic, messages: values.map((value) => ({ value, partition: 0 })) });
  if (end === 'commit') await t.commit();
  if (end === 'abort') await t.abort();
  return () => t.commit();
}

describe('kafkaSource under read_committed', () => {
  const root = tempDir();

  it('reads committed records only, ends ranges on markers and aborted records, stops at an open transaction', async () => {
    const topic = uniqueTopic('txn');
    await createTopic(topic, 1);
    const tx = await producer({ transactionalId: `${topic}-tx`, idempotent: true, maxInFlightRequests: 1 });
    // offset: 0-4 plain | 5-7 committed, 8 marker | 9-11 aborted, 12 marker | 13 plain | 14-15 aborted, 16 marker | 17 open …
    await produce(topic, ['v0', 'v1', 'v2', 'v3', 'v4'].map((value) => ({ value, partition: 0 })));
    await txn(tx, topic, ['c0', 'c1', 'c2'], 'commit');
    await txn(tx, topic, ['a0', 'a1', 'a2'], 'abort');
    await produce(topic, [{ value: 'v5', partition: 0 }]);
    await txn(tx, topic, ['a3', 'a4'], 'abort');
    const commitOpen = await txn(tx, topic, ['o0'], 'open');

    const ends = (await topicOffsets(topic)).get(0)!;
    expect(ends.high).toBe(17); // kafkajs's admin asks with READ_COMMITTED: the last stable offset, not the high watermark (18)

    const dir = join(root, 'cp');
    const groupId = `${topic}-job`;
    const first = await runKafkaJob(dir, { topics: [topic], groupId }, { once: true }, { batch: { maxRecordsPerPartition: 3 } });
    expect(first.batches.map((b) => b.ranges.map((r) => [r.from, r.until])[0])).toEqual([[0, 3], [3, 6], [6, 9], [9, 12], [12, 15], [15, 17]]);
    expect(first.records.map((rs) => rs.map((r) => `${r.offset}:${r.value!.toString()}`))).toEqual([
      ['0:v0', '1:v1', '2:v2'],
      ['3:v3', '4:v4', '5:c0'],
      ['6:c1', '7:c2'], // and the commit marker at 8
      [], // three aborted records
      ['13:v5'], // a marker at 12, an aborted record at 14
      [], // an aborted record and a marker
    ]);
    expect(first.summary.positions).toEqual({ [`${topic}/0`]: 17 });

    // The open transaction commits: the next run starts at 17 and reads it.
    await commitOpen();
    const second = await runKafkaJob(dir, { topics: [topic], groupId }, { once: true }, { batch: { maxRecordsPerPartition: 3 } });
    expect(second.batches.map((b) => b.ranges.map((r) => [r.from, r.until])[0])).toEqual([[17, 19]]);
    expect(second.records.flat().map((r) => `${r.offset}:${r.value!.toString()}`)).toEqual(['17:o0']);
  });

  it('reads a topic written by the Java producer in many small transactions, ranges ending between and on markers', async () => {
    const topic = uniqueTopic('txn-java');
    await createTopic(topic, 1);
    const n = 3000;
    await javaPerfProduce(topic, n, 'monotonic', { 'compression.type': 'lz4' }, ['--transactional-id', `${topic}-tx`, '--transaction-duration-ms', '5']);
    const end = (await topicOffsets(topic)).get(0)!.high;
    expect(end).toBeGreaterThan(n); // the commit markers took offsets

    const run = await runKafkaJob(join(root, 'java'), { topics: [topic], groupId: `${topic}-job` }, { once: true }, { batch: { maxRecordsPerPartition: 97 } });
    expect(run.summary.positions).toEqual({ [`${topic}/0`]: end });
    const all = run.records.flat();
    // --payload-monotonic: the values are 0, 1, 2 …, one per committed record, in order.
    expect(all.map((r) => r.value!.toString())).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    const offsets = all.map((r) => r.offset);
    expect(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!)).toBe(true);
    expect(offsets[offsets.length - 1]).toBeLessThan(end);
    for (const [i, b] of run.batches.entries()) {
      for (const rec of run.records[i]!) {
        expect(rec.offset).toBeGreaterThanOrEqual(b.ranges[0]!.from);
        expect(rec.offset).toBeLessThan(b.ranges[0]!.until);
      }
    }
  });
});
