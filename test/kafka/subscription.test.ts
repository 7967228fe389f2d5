// What a kafkaSource reads: topics, a pattern (new topics join at the next plan), explicit
// partitions; partitions added while running; where new partitions start; and the job's
// consumer group as Kafka's own tools show it.
import { join } from 'node:path';
import { defineJob, Engine, kafkaSource, type BatchStats, type SourceRecord } from 'tidemark';
import { admin, bootstrap, brokers, closeClients, createTopic, describeGroup, kafkaTool, produce, runKafkaJob, uniqueTopic, until } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

const key = (r: SourceRecord): string => `${r.topic}/${r.partition}@${r.offset}=${r.value!.toString()}`;

/** Starts a never-ending job in the background; returns what it has read so far and a stop function. */
function background(dir: string, sourceOptions: Parameters<typeof kafkaSource>[0]) {
  const source = kafkaSource(sourceOptions);
  const seen: SourceRecord[] = [];
  const batches: BatchStats[] = [];
  const engine = new Engine(defineJob<SourceRecord>({
    name: 'bg', source, sinks: [{ name: 'none', write: async () => {} }], stageOutputs: false,
    transform: (records) => {
      seen.push(...records);
      return records;
    },
    batch: { maxWaitMs: 0, pollIntervalMs: 100, maxRecordsPerPartition: 50 },
  }), { checkpointDir: dir, onBatch: (s) => batches.push(s) });
  const running = engine.run();
  return {
    source, seen, batches, engine,
    async stop() {
      engine.stop();
      return running;
    },
  };
}

describe('kafkaSource subscriptions', () => {
  const root = tempDir();

  it('picks up a partition added while the job runs, from its first offset', async () => {
    const topic = uniqueTopic('grow');
    await createTopic(topic, 2);
    await produce(topic, Array.from({ length: 20 }, (_, i) => ({ value: `a${i}`, partition: i % 2 })));
    const job = background(join(root, 'grow'), { brokers: brokers(), topics: [topic], groupId: `${topic}-job` });
    try {
      await until('the first 20 records', () => job.seen.length === 20);
      await (await admin()).createPartitions({ topicPartitions: [{ topic, count: 3 }] });
      await produce(topic, Array.from({ length: 10 }, (_, i) => ({ value: `b${i}`, partition: 2 })));
      await produce(topic, Array.from({ length: 5 }, (_, i) => ({ value: `c${i}`, partition: 0 })));
      await until('the records of the new partition', () => job.seen.length === 35);
    } finally {
      await job.stop();
    }
    const got = job.seen.map(key);
    expect(new Set(got).size).toBe(35);
    expect(got.filter((k) => k.startsWith(`${topic}/2@`))).toEqual(Array.from({ length: 10 }, (_, i) => `${topic}/2@${i}=b${i}`));
    expect(got.filter((k) => k.startsWith(`${topic}/0@`))).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `${topic}/0@${i}=a${2 * i}`), ...Array.from({ length: 5 }, (_, i) => `${topic}/0@${10 + i}=c${i}`),
    ]);
    const p2 = job.batches.flatMap((b) => b.ranges).filter((r) => r.partition === 2);
    expect(p2[0]!.from).toBe(0);
  });

  it('a pattern: topics created later join at the next plan; other topics and internal ones are not read', async () => {
    const prefix = uniqueTopic('pat');
    const [a, b, other] = [`${prefix}.a`, `${prefix}.b`, `${prefix}-other`];
    await createTopic(a, 2);
    await createTopic(other, 1);
    await produce(a, Array.from({ length: 6 }, (_, i) => ({ value: `a${i}`, partition: i % 2 })));
    await produce(other, [{ value: 'not me', partition: 0 }]);
    const pattern = new RegExp(`^${prefix.replace(/[.-]/g, (c) => `\\${c}`)}\\..*`);
    const job = background(join(root, 'pat'), { brokers: brokers(), pattern, groupId: `${prefix}-job` });
    try {
      await until('topic a', () => job.seen.length === 6);
      await createTopic(b, 1);
      await produce(b, Array.from({ length: 4 }, (_, i) => ({ value: `b${i}`, partition: 0 })));
      await until('topic b', () => job.seen.length === 10);
    } finally {
      await job.stop();
    }
    expect(job.seen.map((r) => r.topic).filter((t) => t !== a && t !== b)).toEqual([]);
    expect(job.seen.filter((r) => r.topic === b).map((r) => r.value!.toString())).toEqual(['b0', 'b1', 'b2', 'b3']);
    expect(job.source.id).toBe(`kafka:/${pattern.source}/`);
  });

  it('explicit partitions (assign): only those are read', async () => {
    const topic = uniqueTopic('assign');
    await createTopic(topic, 3);
    await produce(topic, Array.from({ length: 30 }, (_, i) => ({ value: `v${i}`, partition: i % 3 })));
    const run = await runKafkaJob(join(root, 'assign'), { assign: [`${topic}/2`, { topic, partition: 0 }], groupId: `${topic}-job` }, { once: true });
    expect(run.source.id).toBe(`kafka:${topic}/0,${topic}/2`);
    const got = run.records.flat();
    expect(got.length).toBe(20);
    expect(new Set(got.map((r) => r.partition))).toEqual(new Set([0, 2]));
    expect(run.summary.positions).toEqual({ [`${topic}/0`]: 10, [`${topic}/2`]: 10 });
  });
});

describe('kafkaSource starting offsets (only for partitions the checkpoint does not know)', () => {
  const root = tempDir();

  it('latest: starts at the end, then reads what comes after', async () => {
    const topic = uniqueTopic('start-latest');
    await createTopic(topic, 2);
    await produce(topic, Array.from({ length: 10 }, (_, i) => ({ value: `old${i}`, partition: i % 2 })));
    const dir = join(root, 'latest');
    const opts = { topics: [topic], groupId: `${topic}-job`, startingOffsets: 'latest' as const };
    const first = await runKafkaJob(dir, opts, { once: true });
    expect(first.summary.records).toBe(0);
    expect(first.summary.positions).toEqual({ [`${topic}/0`]: 5, [`${topic}/1`]: 5 });
    await produce(topic, [{ value: 'new', partition: 1 }]);
    const second = await runKafkaJob(dir, opts, { once: true });
    expect(second.records.flat().map(key)).toEqual([`${topic}/1@5=new`]);
  });

  it('by timestamp, and explicit offsets with a fallback', async () => {
    const topic = uniqueTopic('start-ts');
    await createTopic(topic, 2);
    const t0 = Date.now() - 60_000;
    await produce(topic, Array.from({ length: 20 }, (_, i) => ({ value: `v${i}`, partition: i % 2, timestamp: String(t0 + i * 1000) })));
    const byTime = await runKafkaJob(join(root, 'ts'), { topics: [topic], groupId: `${topic}-a`, startingOffsets: { timestamp: t0 + 12_500 } }, { once: true });
    // partition 0 holds v0, v2, …: the first at or after t0+12.5s is v14 (offset 7); partition 1: v13 (offset 6)
    expect(byTime.summary.positions).toEqual({ [`${topic}/0`]: 10, [`${topic}/1`]: 10 });
    expect(byTime.records.flat().map((r) => r.value!.toString()).sort()).toEqual(['v13', 'v14', 'v15', 'v16', 'v17', 'v18', 'v19']);

    const explicit = await runKafkaJob(join(root, 'explicit'), {
      topics: [topic], groupId: `${topic}-b`, startingOffsets: { offsets: { [`${topic}/0`]: 8 } }, startingFallback: 'latest',
    }, { once: true });
    expect(explicit.records.flat().map(key)).toEqual([`${topic}/0@8=v16`, `${topic}/0@9=v18`]);
    expect(explicit.summary.positions).toEqual({ [`${topic}/0`]: 10, [`${topic}/1`]: 10 });
  });

  it("the group's committed offsets, and tidemark's progress and lag in kafka-consumer-groups (the Java tool)", async () => {
    const topic = uniqueTopic('group');
    await createTopic(topic, 2);
    await produce(topic, Array.from({ length: 40 }, (_, i) => ({ value: `v${i}`, partition: i % 2 })));
    const groupId = `${topic}-job`;
    // Another tool left offsets in the group: 15 for partition 0, none for partition 1.
    await (await admin()).setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '15' }] });

    const dir = join(root, 'group');
    const first = await runKafkaJob(dir, { topics: [topic], groupId, startingOffsets: 'group' }, { once: true }, { batch: { maxRecordsPerPartition: 4 } });
    const p0 = first.batches.flatMap((b) => b.ranges).filter((r) => r.partition === 0);
    expect(p0[0]!.from).toBe(15);
    expect(first.records.flat().filter((r) => r.partition === 1).length).toBe(20); // fallback: earliest
    expect(first.summary.positions).toEqual({ [`${topic}/0`]: 20, [`${topic}/1`]: 20 });

    // The reader fetched in a group of its own, deleted when the source closed.
    const groups = (await kafkaTool('consumer-groups', ['--bootstrap-server', bootstrap(), '--list'])).stdout.split('\n').map((l) => l.trim());
    expect(groups).toContain(groupId);
    expect(groups.filter((g) => g.startsWith(`${groupId}.reader.`))).toEqual([]);

    // After each batch the positions went to the group (from outside it): the Java tool shows them, lag 0 …
    const done = await describeGroup(groupId);
    expect(done.rows.map((r) => [r.topic, r.partition, r.currentOffset, r.logEndOffset, r.lag])).toEqual([[topic, 0, 20, 20, 0], [topic, 1, 20, 20, 0]]);
    // … and the lag once more records arrive while tidemark is not running.
    await produce(topic, Array.from({ length: 6 }, (_, i) => ({ value: `w${i}`, partition: 1 })));
    const behind = await describeGroup(groupId);
    expect(behind.rows.find((r) => r.partition === 1)!.lag).toBe(6);

    // The checkpoint, not the group, is the truth: offsets moved in the group are ignored on restart.
    await (await admin()).setOffsets({ groupId, topic, partitions: [{ partition: 1, offset: '0' }] });
    const second = await runKafkaJob(dir, { topics: [topic], groupId, startingOffsets: 'group' }, { once: true });
    expect(second.records.flat().map((r) => r.value!.toString())).toEqual(['w0', 'w1', 'w2', 'w3', 'w4', 'w5']);
    expect((await describeGroup(groupId)).rows.find((r) => r.partition === 1)!.currentOffset).toBe(26);
  });
});
