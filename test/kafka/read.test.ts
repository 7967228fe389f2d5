// Reading a Kafka topic in batches: continuity against what was produced, the consumer
// kept across batches, data beyond a range's end reused, rate and memory bounds.
import { join } from 'node:path';
import { defineJob, Engine, kafkaSource, memorySink, type SourceRecord } from 'tidemark';
import { brokers, closeClients, createTopic, produce, runKafkaJob, uniqueTopic } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

const value = (p: number, i: number): string => `p${p}-r${i}`;

/** Checks that the ranges of each partition are contiguous from `start`, in batch order. */
function expectContinuity(batches: ReadonlyArray<{ ranges: ReadonlyArray<{ topic: string; partition: number; from: number; until: number }> }>, start: number): Map<string, number> {
  const position = new Map<string, number>();
  for (const b of batches) {
    for (const r of b.ranges) {
      const key = `${r.topic}/${r.partition}`;
      expect(r.from).toBe(position.get(key) ?? start);
      expect(r.until).toBeGreaterThanOrEqual(r.from);
      position.set(key, r.until);
    }
  }
  return position;
}

describe('kafkaSource: a 4-partition topic read in batches', () => {
  const root = tempDir();

  it('delivers exactly what was produced, range after contiguous range, with one seek per partition', async () => {
    const topic = uniqueTopic('read4');
    await createTopic(topic, 4);
    const perPartition = 1000;
    for (let p = 0; p < 4; p++) {
      await produce(topic, Array.from({ length: perPartition }, (_, i) => ({ key: `k${i}`, value: value(p, i), partition: p })));
    }
    const dir = join(root, 'cp');
    const run = await runKafkaJob(dir, { topics: [topic], groupId: `${topic}-job` }, { once: true }, { batch: { maxRecordsPerPartition: 150 } });

    expect(run.summary.records).toBe(4 * perPartition);
    expect(run.batches.length).toBe(Math.ceil(perPartition / 150));
    const positions = expectContinuity(run.batches, 0);
    for (let p = 0; p < 4; p++) expect(positions.get(`${topic}/${p}`)).toBe(perPartition);
    for (const b of run.batches) for (const r of b.ranges) expect(r.until - r.from).toBeLessThanOrEqual(150);

    // Every record exactly once, in offset order within its partition, with its key and value.
    const all = run.records.flat();
    expect(all.length).toBe(4 * perPartition);
    for (let p = 0; p < 4; p++) {
      const mine = all.filter((r) => r.partition === p);
      expect(mine.map((r) => r.offset)).toEqual(Array.from({ length: perPartition }, (_, i) => i));
      expect(mine.map((r) => r.value!.toString())).toEqual(Array.from({ length: perPartition }, (_, i) => value(p, i)));
      expect(mine[7]!.key!.toString()).toBe('k7');
      expect(mine.every((r) => r.topic === topic && typeof r.timestamp === 'number' && r.timestamp > 0)).toBe(true);
    }
    // Each batch holds the records of exactly its ranges.
    run.batches.forEach((b, i) => {
      const got = run.records[i]!;
      expect(got.length).toBe(b.ranges.reduce((n, r) => n + (r.until - r.from), 0));
      for (const rec of got) {
        const r = b.ranges.find((x) => x.partition === rec.partition)!;
        expect(rec.offset).toBeGreaterThanOrEqual(r.from);
        expect(rec.offset).toBeLessThan(r.until);
      }
    });

    // One consumer for the whole run: one start, one join, one seek per partition (the first read);
    // later ranges continued where the previous ones ended, partly from records fetched beyond them.
    const stats = run.source.stats();
    expect(stats.consumerStarts).toBe(1);
    expect(stats.groupJoins).toBe(1);
    expect(stats.seeks).toBe(4);
    expect(stats.reseeks).toBe(0);
    expect(stats.recordsFromBuffer).toBeGreaterThan(0);
    expect(stats.recordsFetched).toBe(4 * perPartition);

    // A second run on the same checkpoint finds nothing new; more records then continue the ranges.
    for (let p = 0; p < 4; p++) await produce(topic, [{ value: value(p, perPartition), partition: p }]);
    const more = await runKafkaJob(dir, { topics: [topic], groupId: `${topic}-job` }, { once: true });
    expect(more.summary.records).toBe(4);
    expect(more.batches[0]!.ranges.map((r) => [r.partition, r.from, r.until])).toEqual([0, 1, 2, 3].map((p) => [p, perPartition, perPartition + 1]));
    expect(more.records.flat().map((r) => r.value!.toString()).sort()).toEqual([0, 1, 2, 3].map((p) => value(p, perPartition)));
  });

  it('hands over chunks that carry their keys\' and values\' bytes (null keys, tombstones, empty values), from fetches and from the buffer', async () => {
    const topic = uniqueTopic('chunk-bytes');
    await createTopic(topic, 1);
    await produce(topic, Array.from({ length: 300 }, (_, i) => ({ partition: 0, key: i % 4 === 0 ? null : `k${i}`, value: i % 5 === 0 ? null : i % 7 === 0 ? '' : `välue ${i}` })));
    const source = kafkaSource({ brokers: brokers(), topics: [topic], groupId: `${topic}-job` });
    try {
      let records = 0;
      for (const r of [{ from: 0, until: 120 }, { from: 120, until: 300 }]) {
        for await (const chunk of source.read([{ topic, partition: 0, ...r }], new AbortController().signal)) {
          records += chunk.length;
          expect(chunk.bytes).toBe(chunk.reduce((n, x) => n + (x.key?.length ?? 0) + (x.value?.length ?? 0), 0));
        }
      }
      expect(records).toBe(300);
      expect(source.stats().recordsFromBuffer).toBeGreaterThan(0); // the second read took records fetched during the first
    } finally {
      await source.close();
    }
  });

  it('reads ahead while a batch is delivered (and not with readAheadBytes: 0), every record still exactly once', async () => {
    const topic = uniqueTopic('readahead');
    await createTopic(topic, 2);
    for (let p = 0; p < 2; p++) {
      for (let i = 0; i < 2000; i += 100) await produce(topic, Array.from({ length: 100 }, (_, j) => ({ value: value(p, i + j), partition: p })));
    }
    const slow = { name: 'slow', write: () => new Promise<void>((resolve) => setTimeout(resolve, 150)) };
    for (const readAheadBytes of [undefined, 0]) {
      const run = await runKafkaJob(join(root, `ahead-${readAheadBytes ?? 'default'}`), {
        topics: [topic], groupId: `${topic}-job-${readAheadBytes ?? 'default'}`, consumer: { maxBytesPerPartition: 8 * 1024 },
        ...(readAheadBytes === undefined ? {} : { readAheadBytes }),
      }, { once: true }, { sinks: [slow], batch: { maxRecordsPerPartition: 400 } });
      const all = run.records.flat();
      for (let p = 0; p < 2; p++) {
        expect(all.filter((r) => r.partition === p).map((r) => r.value!.toString())).toEqual(Array.from({ length: 2000 }, (_, i) => value(p, i)));
      }
      const stats = run.source.stats();
      expect(stats.recordsFetched).toBe(4000);
      if (readAheadBytes === 0) expect(stats.recordsReadAhead).toBe(0);
      else expect(stats.recordsReadAhead).toBeGreaterThan(1000); // most of batches 2…5 arrived while the one before was delivered
    }
  });

  it('an idle daemon plans again when records arrive (the read-ahead fetch wakes it), not at its next poll', async () => {
    const topic = uniqueTopic('wake');
    await createTopic(topic, 2);
    await produce(topic, [{ value: value(0, 0), partition: 0 }, { value: value(1, 0), partition: 1 }]);
    const run = await runKafkaJob(join(root, 'wake'), { topics: [topic], groupId: `${topic}-job` }, {}, {
      batch: { pollIntervalMs: 600_000 }, // polling alone would not see the second produce within the test's time
    }, {
      onEngine: (engine) => {
        let produced = false;
        const timer = setInterval(() => {
          const seen = engine.status().positions;
          if (!produced && seen[`${topic}/0`] === 1 && seen[`${topic}/1`] === 1) {
            produced = true;
            void produce(topic, [{ value: value(0, 1), partition: 0 }, { value: value(1, 1), partition: 1 }]);
          }
          if (seen[`${topic}/0`] === 2 && seen[`${topic}/1`] === 2) {
            clearInterval(timer);
            engine.stop();
          }
        }, 20);
      },
    });
    expect(run.records.flat().map((r) => r.value!.toString()).sort()).toEqual([value(0, 0), value(0, 1), value(1, 0), value(1, 1)]);
  }, 60_000);

  it('stays within maxBufferedBytes by pausing the consumer, and still reads every record', async () => {
    const topic = uniqueTopic('membound');
    await createTopic(topic, 4);
    const big = 'x'.repeat(2000);
    for (let p = 0; p < 4; p++) {
      for (let i = 0; i < 300; i += 10) {
        // small produce requests, so record batches are ~20 KB and the fetch size limits apply
        await produce(topic, Array.from({ length: 10 }, (_, j) => ({ value: `${p}:${i + j}:${big}`, partition: p })));
      }
    }
    const bound = 100_000;
    const run = await runKafkaJob(join(root, 'mem'), {
      topics: [topic], groupId: `${topic}-job`, maxBufferedBytes: bound, consumer: { maxBytesPerPartition: 64 * 1024, maxBytes: 256 * 1024 },
    }, { once: true }, { batch: { maxRecordsPerPartition: 300 } });
    expect(run.summary.records).toBe(1200);
    const all = run.records.flat();
    for (let p = 0; p < 4; p++) {
      expect(all.filter((r) => r.partition === p).map((r) => Number(r.value!.toString().split(':')[1]))).toEqual(Array.from({ length: 300 }, (_, i) => i));
    }
    const stats = run.source.stats();
    expect(stats.memoryPauses).toBeGreaterThan(0);
    // The bound can be passed by at most what one fetch response brings in (maxBytes, plus one batch).
    expect(stats.peakBufferedBytes).toBeLessThanOrEqual(bound + 256 * 1024 + 25 * 1024);
  });

  it('keeps its group membership while a slow sink holds a batch longer than the session timeout', async () => {
    const topic = uniqueTopic('slowsink');
    await createTopic(topic, 2);
    await produce(topic, Array.from({ length: 40 }, (_, i) => ({ value: `v${i}`, partition: i % 2 })));
    const source = kafkaSource({ brokers: brokers(), topics: [topic], groupId: `${topic}-job`, consumer: { sessionTimeout: 6_000, heartbeatInterval: 500 } });
    const sink = memorySink<string>();
    let slow = true;
    const engine = new Engine(defineJob<string>({
      name: 'slow', source, transform: (rs: SourceRecord[]) => rs.map((r) => r.value!.toString()), stageOutputs: false,
      sinks: [{
        name: 'slow',
        async write(batch) {
          if (slow) {
            slow = false;
            await new Promise((r) => setTimeout(r, 9_000)); // > sessionTimeout: without heartbeats the member would be evicted
          }
          await sink.write(batch);
        },
      }],
      batch: { maxRecordsPerPartition: 10, maxWaitMs: 0, pollIntervalMs: 50 },
    }), { checkpointDir: join(root, 'slow') });
    const summary = await engine.run({ once: true });
    expect(summary.records).toBe(40);
    expect(sink.all().sort()).toEqual(Array.from({ length: 40 }, (_, i) => `v${i}`).sort());
    const stats = source.stats();
    expect(stats.groupJoins).toBe(1); // never evicted, never rejoined
    expect(stats.seeks).toBe(2);
  });
});
