// The Kafka topic sink against the real broker: one transaction per batch that also
// records the batch id (offset metadata of a sink-side group), so redeliveries are
// skipped and a read_committed consumer sees every output once; zombies are fenced.
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import {
  forwardRecord, generatorSource, kafkaSink, SinkFencedError, SinkLedgerMismatchError, type SinkBatch,
} from 'tidemark';
import { checkIdempotentSink } from 'tidemark/testing';
import { brokers, closeClients, createTopic, readTopic, uniqueTopic } from '../support/kafka';
import { duplicates } from './sink-support';

afterAll(closeClients);

const ranges = (id: number) => [{ topic: 'in', partition: 0, from: (id - 1) * 100, until: id * 100 }];
const batch = <T>(id: number, outputs: T[], job = 'job-k'): SinkBatch<T> => ({ id, job, ranges: ranges(id), outputs });
const values = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ n: from + i }));

describe('kafkaSink', () => {
  it('a new instance right after a commit sees the batch as delivered: InitProducerId waits for the transaction to complete before the ledger is read', async () => {
    const topic = uniqueTopic('sink-barrier');
    await createTopic(topic, 2);
    for (let id = 1; id <= 8; id++) {
      const first = kafkaSink<{ n: number }>({ brokers: brokers(), topic, name: 'barrier' });
      await first.write(batch(id, values(id * 10, 10)));
      const restarted = kafkaSink<{ n: number }>({ brokers: brokers(), topic, name: 'barrier' });
      await restarted.write(batch(id, values(id * 10, 10))); // at once: the commit's markers may still be on their way
      await Promise.all([first.close(), restarted.close()]);
    }
    const all = await readTopic(brokers(), topic, 'read_uncommitted');
    expect(duplicates(all.map((r) => r.value))).toEqual({});
    expect(all).toHaveLength(80);
  });

  it('produces a batch in one transaction; a redelivery (same or new instance) is skipped; read_committed sees each output once', async () => {
    const topic = uniqueTopic('sink-basic');
    await createTopic(topic, 3);
    const make = () => kafkaSink<{ n: number }>({ brokers: brokers(), topic });
    const a = make();
    await a.write(batch(1, values(0, 500)));
    await a.write(batch(1, values(0, 500)));
    expect(await a.lastDelivered('job-k')).toBe(1);
    const b = make();
    await b.write(batch(1, values(0, 500))); // as after a crash between delivery and commit
    await b.write(batch(2, values(500, 300)));
    await Promise.all([a.close(), b.close()]);

    const committed = await readTopic(brokers(), topic);
    expect(committed).toHaveLength(800);
    expect(duplicates(committed.map((r) => r.value))).toEqual({});
    expect(new Set(committed.map((r) => JSON.parse(r.value!).n))).toEqual(new Set(Array.from({ length: 800 }, (_, i) => i)));
    expect(new Set(committed.map((r) => r.headers['tidemark.batch']))).toEqual(new Set(['1', '2']));
    // Nothing was even attempted twice: no aborted records behind the committed ones.
    expect(await readTopic(brokers(), topic, 'read_uncommitted')).toHaveLength(800);
  });

  it('keys, headers with the source lineage, explicit partitions, per-message topics, and each compression codec', async () => {
    const topic = uniqueTopic('sink-shape');
    const side = uniqueTopic('sink-shape-side');
    await createTopic(topic, 4);
    await createTopic(side, 1);
    const source = generatorSource({ topic: 'clicks', partitions: 2, size: 50 });
    const records = [...Array.from({ length: 50 }, (_, o) => source.record(0, o)), ...Array.from({ length: 50 }, (_, o) => source.record(1, o))];
    for (const compression of ['none', 'gzip', 'snappy', 'lz4'] as const) {
      const sink = kafkaSink<(typeof records)[number]>({
        brokers: brokers(), topic, name: `shape-${compression}`, compression,
        message: (r) => forwardRecord(r, {
          value: `${compression}:${r.value!.toString()}`,
          headers: { codec: compression },
          ...(r.offset === 7 ? { partition: 3 } : {}),
          ...(r.offset === 9 ? { topic: side } : {}),
        }),
      });
      await sink.write(batch(1, records, `job-${compression}`));
      await sink.close();
    }
    const got = await readTopic(brokers(), topic);
    expect(got).toHaveLength(4 * 98);
    for (const compression of ['none', 'gzip', 'snappy', 'lz4']) {
      const mine = got.filter((r) => r.headers.codec === compression);
      expect(mine).toHaveLength(98);
      for (const r of mine) {
        const { p, o } = JSON.parse(r.value!.slice(compression.length + 1)) as { p: number; o: number };
        expect(r.key).toBe(`k${o % 97}`);
        expect(r.headers).toEqual({
          codec: compression, 'tidemark.batch': '1', 'tidemark.source.topic': 'clicks', 'tidemark.source.partition': String(p), 'tidemark.source.offset': String(o),
        });
        if (o === 7) expect(r.partition).toBe(3);
      }
      // Same key, same partition: the default partitioner is Kafka's (murmur2 of the key).
      const byKey = new Map<string, Set<number>>();
      for (const r of mine) byKey.set(r.key!, (byKey.get(r.key!) ?? new Set()).add(r.partition));
      expect([...byKey].filter(([k, parts]) => k !== 'k7' && parts.size > 1)).toEqual([]);
    }
    const sideRecords = await readTopic(brokers(), side);
    expect(sideRecords.map((r) => r.value!.split(':')[0]).sort()).toEqual(['gzip', 'gzip', 'lz4', 'lz4', 'none', 'none', 'snappy', 'snappy']);
  });

  it('several record batches per partition in one transaction: each output once, in output order within its partition, keys where kafkajs\'s partitioner puts them', async () => {
    const topic = uniqueTopic('sink-batches');
    await createTopic(topic, 3);
    // 4 KiB per partition batch: each 2,000-output write takes ~20 produce requests, built while the previous one is in flight.
    const sink = kafkaSink<{ n: number }>({
      brokers: brokers(), topic, name: 'batches', maxRequestBytes: 4 * 1024,
      // Some records with an old timestamp: negative deltas within a batch, which the broker must accept.
      message: (o) => ({ key: `k${o.n % 50}`, value: JSON.stringify(o), ...(o.n % 7 === 0 ? { timestamp: 1_700_000_000_000 + o.n } : {}) }),
    });
    await sink.write(batch(1, values(0, 2000)));
    await sink.write(batch(2, values(2000, 2000))); // the same producer: its sequences go on across transactions
    await sink.close();
    const got = await readTopic(brokers(), topic);
    expect(got).toHaveLength(4000);
    expect(duplicates(got.map((r) => r.value))).toEqual({});
    const partition = Partitioners.DefaultPartitioner();
    const metadata = [0, 1, 2].map((partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
    for (let p = 0; p < 3; p++) {
      const ns = got.filter((r) => r.partition === p).map((r) => (JSON.parse(r.value!) as { n: number }).n);
      expect(ns).toEqual([...ns].sort((a, b) => a - b));
    }
    for (const r of got) expect(r.partition).toBe(partition({ topic, partitionMetadata: metadata, message: { key: r.key, value: null } }));
    expect(await readTopic(brokers(), topic, 'read_uncommitted')).toHaveLength(4000);
  });

  it('refuses a batch the ledger contradicts (other ranges for the same id, or a later batch delivered)', async () => {
    const topic = uniqueTopic('sink-ledger');
    await createTopic(topic, 1);
    const sink = kafkaSink<{ n: number }>({ brokers: brokers(), topic });
    await sink.write(batch(5, values(0, 10)));
    await expect(sink.write({ ...batch(5, values(0, 10)), ranges: [{ topic: 'in', partition: 0, from: 0, until: 3 }] })).rejects.toThrow(SinkLedgerMismatchError);
    await expect(sink.write(batch(4, values(0, 10)))).rejects.toThrow(/records a later batch \(5\) as delivered/);
    await sink.close();
    expect(await readTopic(brokers(), topic)).toHaveLength(10);
  });

  it('passes the sink check: every batch delivered twice, by the same instance and by restarted ones', async () => {
    const topic = uniqueTopic('sink-check');
    await createTopic(topic, 2);
    const batches = Array.from({ length: 4 }, (_, b) => values(b * 100, 20 + b));
    const report = await checkIdempotentSink<{ n: number }>({
      sink: () => kafkaSink<{ n: number }>({ brokers: brokers(), topic }),
      batches,
      read: async () => (await readTopic(brokers(), topic)).map((r) => JSON.parse(r.value!) as unknown),
    });
    expect(report.instances).toBe(3);
  });
});

describe('zombie fencing', () => {
  it('kafkajs on this broker: of two producers with one transactionalId, the older one\'s commit fails and its records stay invisible', async () => {
    const topic = uniqueTopic('fence-raw');
    await createTopic(topic, 1);
    const kafka = new Kafka({ clientId: 'fence-test', brokers: brokers(), logLevel: logLevel.NOTHING });
    const opts = { transactionalId: `${topic}-tx`, idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner };
    const old = kafka.producer(opts);
    await old.connect();
    const zombieTx = await old.transaction();
    await zombieTx.send({ topic, messages: [{ value: 'zombie' }] });
    const successor = kafka.producer(opts);
    await successor.connect(); // InitProducerId bumps the epoch and aborts the open transaction
    const tx = await successor.transaction();
    await tx.send({ topic, messages: [{ value: 'successor' }] });
    const err = await zombieTx.commit().then(() => undefined, (e: unknown) => e as { type?: string });
    await tx.commit();
    await Promise.all([old.disconnect(), successor.disconnect()]);
    expect(err?.type).toBe('INVALID_PRODUCER_EPOCH');
    expect((await readTopic(brokers(), topic)).map((r) => r.value)).toEqual(['successor']);
  });

  it('a sink whose successor started cannot write: SinkFencedError, nothing of its batch visible, and it never fences back', async () => {
    const topic = uniqueTopic('fence-sink');
    await createTopic(topic, 1);
    const make = () => kafkaSink<{ n: number }>({ brokers: brokers(), topic, name: 'out' });
    const zombie = make();
    await zombie.write(batch(1, values(0, 5)));
    const successor = make();
    await successor.write(batch(2, values(5, 5))); // the successor connects: the zombie's producer is fenced
    const err = await zombie.write(batch(3, values(100, 5))).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SinkFencedError);
    expect((err as SinkFencedError).exitCode).toBe(10);
    expect((err as Error).message).toMatch(/transactionalId tidemark\.job-k\.out was fenced/);
    await expect(zombie.write(batch(3, values(100, 5)))).rejects.toBe(err); // stays stopped: no re-init that would fence the successor
    await successor.write(batch(3, values(10, 5)));
    await Promise.all([zombie.close(), successor.close()]);
    expect((await readTopic(brokers(), topic)).map((r) => JSON.parse(r.value!).n)).toEqual(Array.from({ length: 15 }, (_, i) => i));
  });
});
