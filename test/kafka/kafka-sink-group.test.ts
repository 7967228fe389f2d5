// The Kafka sink in group mode against the real broker: a transactional producer per input
// partition, initialised at claim, and a ledger per input partition judged by epoch and range.
import { Kafka, logLevel } from 'kafkajs';
import { kafkaSink, PartitionFencedError, type SinkBatch } from 'tidemark';
import { brokers, closeClients, createTopic, readTopic, uniqueTopic } from '../support/kafka';

afterAll(closeClients);

const owned = (input: string, epoch: number, from: number, until: number, id: number): SinkBatch<{ o: number }> => ({
  id, job: 'job-g', ranges: [{ topic: input, partition: 1, from, until }],
  outputs: Array.from({ length: until - from }, (_, i) => ({ o: from + i })), owner: { topic: input, partition: 1, epoch },
});

it('a newer owner\'s claim fences the older one at the broker and in the ledger; a range already held is a duplicate', async () => {
  const input = uniqueTopic('gsink-in');
  const out = uniqueTopic('gsink-out');
  await createTopic(input, 2);
  await createTopic(out, 1);
  const old = kafkaSink<{ o: number }>({ brokers: brokers(), topic: out, name: 'g' });
  const next = kafkaSink<{ o: number }>({ brokers: brokers(), topic: out, name: 'g' });
  try {
    await old.claim!({ job: 'job-g', topic: input, partition: 1, epoch: 3 });
    await old.write(owned(input, 3, 0, 10, 1));
    // A claim answers with what the ledger held (the engine tells a lost group state by it: docs/scale-out.md).
    expect(await next.claim!({ job: 'job-g', topic: input, partition: 1, epoch: 4 })).toMatchObject({ epoch: 3, until: 10 });
    // The old owner (a zombie) writes the next range: its producer is fenced, nothing lands.
    await expect(old.write(owned(input, 3, 10, 20, 2))).rejects.toBeInstanceOf(PartitionFencedError);
    // The new owner re-runs the first range (a handoff's re-run): the ledger holds it, nothing is written twice.
    await next.write(owned(input, 4, 0, 10, 7));
    await next.write(owned(input, 4, 10, 20, 8));
    // A claim of an older epoch than the ledger's is refused before it could fence the owner.
    const late = kafkaSink<{ o: number }>({ brokers: brokers(), topic: out, name: 'g' });
    await expect(late.claim!({ job: 'job-g', topic: input, partition: 1, epoch: 3 })).rejects.toMatchObject({ code: 'TIDEMARK_PARTITION_FENCED', newer: 4, delivered: 20 });
    await late.close();
    await next.write(owned(input, 4, 20, 25, 9));
  } finally {
    await Promise.all([old.close(), next.close()]);
  }
  const got = (await readTopic(brokers(), out)).map((r) => (JSON.parse(r.value ?? '{}') as { o: number }).o).sort((a, b) => a - b);
  expect(got).toEqual(Array.from({ length: 25 }, (_, i) => i));
});

it('a former owner\'s late claim neither takes the partition nor stops its owner, whose producer it fenced at the broker', async () => {
  const input = uniqueTopic('gsink-late-in');
  const out = uniqueTopic('gsink-late-out');
  await createTopic(input, 2);
  await createTopic(out, 1);
  const owner = kafkaSink<{ o: number }>({ brokers: brokers(), topic: out, name: 'g' });
  const former = kafkaSink<{ o: number }>({ brokers: brokers(), topic: out, name: 'g' });
  const kafka = new Kafka({ clientId: 'late-claim', brokers: brokers(), logLevel: logLevel.NOTHING });
  const stale = kafka.producer({ transactionalId: `tidemark.job-g.g.${input}.1`, idempotent: true, maxInFlightRequests: 1 });
  try {
    expect(await owner.claim!({ job: 'job-g', topic: input, partition: 1, epoch: 4 })).toBeUndefined();
    // The claim is in the ledger before anything is delivered: an older epoch's claim reads it and stands back.
    await expect(former.claim!({ job: 'job-g', topic: input, partition: 1, epoch: 3 })).rejects.toMatchObject({ code: 'TIDEMARK_PARTITION_FENCED', newer: 4, delivered: undefined });
    // A former owner that read the ledger before that claim was recorded gets as far as InitProducerId, which fences the owner's producer.
    await stale.connect();
    await (await stale.transaction()).abort();
    // The owner's write is refused at the broker and retried (as the engine does): the retry claims again and delivers.
    await expect(owner.write(owned(input, 4, 0, 10, 1))).rejects.toThrow(/was fenced by a claim no newer than epoch 4 .*claiming the partition again/);
    await owner.write(owned(input, 4, 0, 10, 1));
    await owner.write(owned(input, 4, 10, 20, 2));
    // A claim after a delivery answers with what the ledger held.
    expect(await former.claim!({ job: 'job-g', topic: input, partition: 1, epoch: 5 })).toEqual({ epoch: 4, until: 20 });
  } finally {
    await Promise.all([owner.close(), former.close(), stale.disconnect()]);
  }
  const got = (await readTopic(brokers(), out)).map((r) => (JSON.parse(r.value ?? '{}') as { o: number }).o).sort((a, b) => a - b);
  expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
});
