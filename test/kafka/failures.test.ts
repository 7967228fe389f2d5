// Failures: an unreachable broker, offsets deleted by retention (both data-loss policies),
// a topic deleted or recreated. Each ends in a clear, typed error: never a silent reset.
import { createServer } from 'node:net';
import { join } from 'node:path';
import { defineJob, Engine, kafkaSource, memorySink, type SourceRecord } from 'tidemark';
import { openCheckpoint } from '../../checkpoint/store';
import { silentLogger } from '../../src/log';
import { tidemark, write } from '../support/cli';
import { admin, brokers, closeClients, createTopic, kafkaTool, bootstrap, produce, runKafkaJob, topicOffsets, uniqueTopic, until } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

/** A port on 127.0.0.1 that nothing listens on. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * The broker's answer while a new cluster creates __consumer_offsets, played for `ms` to the
 * groups whose id starts with `prefix`: kafkajs gives up on it for good after its own few
 * retries (CI met it on a fresh broker). Returns how many lookups were refused, and the undo.
 */
function refuseCoordinator(prefix: string, ms: number): { refused(): number; restore(): void } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Cluster = require('kafkajs/src/cluster') as { prototype: { findGroupCoordinator(this: unknown, o: { groupId: string }): Promise<unknown> } };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { KafkaJSGroupCoordinatorNotFound } = require('kafkajs/src/errors') as { KafkaJSGroupCoordinatorNotFound: new (m: string) => Error };
  const original = Cluster.prototype.findGroupCoordinator;
  const refuseUntil = Date.now() + ms;
  let refused = 0;
  Cluster.prototype.findGroupCoordinator = async function findGroupCoordinator(o) {
    if (o.groupId.startsWith(prefix) && Date.now() < refuseUntil) {
      refused++;
      throw new KafkaJSGroupCoordinatorNotFound('Failed to find group coordinator');
    }
    return original.call(this, o);
  };
  return { refused: () => refused, restore: () => { Cluster.prototype.findGroupCoordinator = original; } };
}

describe('kafkaSource failures', () => {
  const root = tempDir();

  it('broker unreachable at start: SourceUnreachableError after a bounded retry; the CLI exits with code 6', async () => {
    const port = await deadPort();
    const source = kafkaSource({ brokers: [`127.0.0.1:${port}`], topics: ['t'], groupId: 'g', reconnect: { atStartMs: 2_000 } });
    const engine = new Engine(defineJob({ name: 'unreachable', source, sinks: [memorySink()], transform: (r: SourceRecord[]) => r }), { checkpointDir: join(root, 'unreachable') });
    await expect(engine.run({ once: true })).rejects.toMatchObject({
      code: 'TIDEMARK_SOURCE_UNREACHABLE', exitCode: 6, message: expect.stringContaining(`Kafka brokers 127.0.0.1:${port} unreachable`),
    });

    const job = write(join(root, 'job', 'job.ts'), `import { defineJob, kafkaSource, memorySink } from 'tidemark';
export default defineJob({
  name: 'unreachable',
  source: kafkaSource({ brokers: ['127.0.0.1:${port}'], topics: ['orders'], groupId: 'orders-job', reconnect: { atStartMs: 2000 } }),
  sinks: [memorySink()],
  transform: (records) => records.map((r) => r.offset),
});
`);
    const r = await tidemark(['run', job, '--checkpoint', join(root, 'job', 'cp')]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(`Kafka brokers 127.0.0.1:${port} unreachable`);
    expect(r.stderr).toContain('Check that the source is running and reachable');
  });

  it.each(['fail', 'skip'] as const)('offsets deleted by retention below the position, onDataLoss %s', async (policy) => {
    const topic = uniqueTopic(`retention-${policy}`);
    await createTopic(topic, 1);
    await produce(topic, Array.from({ length: 100 }, (_, i) => ({ value: `v${i}`, partition: 0 })));
    const dir = join(root, `retention-${policy}`);
    const groupId = `${topic}-job`;
    // Read [0, 50) and stop.
    const first = await runKafkaJob(dir, { topics: [topic], groupId }, { maxBatches: 1 }, { batch: { maxRecordsPerPartition: 50 } });
    expect(first.summary.positions).toEqual({ [`${topic}/0`]: 50 });
    // Retention (here kafka-delete-records, the Java tool) removes everything below 80.
    const spec = write(join(dir, '..', `${topic}-delete.json`), JSON.stringify({ version: 1, partitions: [{ topic, partition: 0, offset: 80 }] }));
    await kafkaTool('delete-records', ['--bootstrap-server', bootstrap(), '--offset-json-file', spec]);
    expect((await topicOffsets(topic)).get(0)!.low).toBe(80);

    const again = runKafkaJob(dir, { topics: [topic], groupId }, { once: true }, { onDataLoss: policy });
    if (policy === 'fail') {
      await expect(again).rejects.toMatchObject({ code: 'TIDEMARK_DATA_LOSS', exitCode: 5, message: expect.stringContaining(`${topic}/0 [50, 80)`) });
      const store = await openCheckpoint(dir, { readOnly: true });
      expect((await store.load()).positions).toEqual({ [`${topic}/0`]: 50 }); // nothing skipped
      await store.close();
    } else {
      const run = await again;
      expect(run.records.flat().map((r) => r.offset)).toEqual(Array.from({ length: 20 }, (_, i) => 80 + i));
      expect(run.summary.positions).toEqual({ [`${topic}/0`]: 100 });
      const store = await openCheckpoint(dir, { readOnly: true });
      expect((await store.lostRanges()).map((l) => [l.topic, l.partition, l.from, l.until])).toEqual([[topic, 0, 50, 80]]);
      await store.close();
    }
  });

  it('a topic deleted, or recreated with lower offsets: SourceWentBackwardsError naming it (exit 11), never a reset', async () => {
    const topic = uniqueTopic('deleted');
    await createTopic(topic, 2);
    await produce(topic, Array.from({ length: 10 }, (_, i) => ({ value: `v${i}`, partition: i % 2 })));
    const dir = join(root, 'deleted');
    const groupId = `${topic}-job`;
    const first = await runKafkaJob(dir, { topics: [topic], groupId }, { once: true });
    expect(first.summary.records).toBe(10);

    await (await admin()).deleteTopics({ topics: [topic] });
    await until('the topic to be gone', async () => !(await (await admin()).listTopics()).includes(topic));
    await expect(runKafkaJob(dir, { topics: [topic], groupId }, { once: true })).rejects.toMatchObject({
      code: 'TIDEMARK_SOURCE_WENT_BACKWARDS', exitCode: 11, message: expect.stringContaining(`${topic}/0 now ends at offset 0, below the checkpoint's position 5`),
    });

    // Recreated, with fewer records than the checkpoint had read.
    await until('the topic to be created again', async () => {
      try {
        await createTopic(topic, 2);
        return true;
      } catch {
        return false; // the deletion is still in progress
      }
    });
    await produce(topic, [{ value: 'new', partition: 0 }]);
    await expect(runKafkaJob(dir, { topics: [topic], groupId }, { once: true })).rejects.toMatchObject({
      code: 'TIDEMARK_SOURCE_WENT_BACKWARDS', message: expect.stringContaining(`${topic}/0 now ends at offset 1, below the checkpoint's position 5`),
    });
    const store = await openCheckpoint(dir, { readOnly: true });
    expect((await store.load()).positions).toEqual({ [`${topic}/0`]: 5, [`${topic}/1`]: 5 });
    await store.close();
  });

  // Under load, kafkajs's UNKNOWN_TOPIC_OR_PARTITION once reached the top raw (code 3): which
  // step meets the deletion first depends on timing. The deletion is placed at each step of
  // the next batch (after listing the partitions, after the offsets, as the read begins) and
  // after several delays; every run must end with the typed error and keep its positions.
  type Phase = 'partitions' | 'offsets' | 'read' | { readonly afterMs: number };
  const phases: Phase[] = ['partitions', 'offsets', 'read', { afterMs: 0 }, { afterMs: 40 }, { afterMs: 150 }, { afterMs: 400 }];
  it.each(phases.map((p) => [typeof p === 'string' ? p : `${p.afterMs} ms`, p] as const))(
    'a topic deleted while the job runs (at: %s) stops it with SourceWentBackwardsError, positions kept', async (name, phase) => {
      const topic = uniqueTopic(`deleted-live-${name.replace(/\W/g, '')}`);
      await createTopic(topic, 1);
      await produce(topic, Array.from({ length: 5 }, (_, i) => ({ value: `v${i}`, partition: 0 })));
      const seen: SourceRecord[] = [];
      let armed = false;
      let deleted: Promise<void> | undefined;
      const remove = (): Promise<void> => (deleted ??= admin().then((a) => a.deleteTopics({ topics: [topic] })));
      /** Deletes the topic the first time `step` runs after the first batch, before the step's result is used. */
      const at = <A extends unknown[], R>(step: Phase, fn: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
        const result = await fn(...args);
        if (armed && phase === step) await remove();
        return result;
      };
      const source = kafkaSource({ brokers: brokers(), topics: [topic], groupId: `${topic}-job` });
      const wrapped: typeof source = {
        ...source,
        partitions: at('partitions', source.partitions),
        offsets: at('offsets', source.offsets),
        read: (ranges, signal) => {
          const inner = source.read(ranges, signal);
          return (async function* () {
            if (armed && phase === 'read' && ranges.some((r) => r.until > r.from)) await remove();
            yield* inner;
          })();
        },
      };
      const dir = join(root, `deleted-live-${name.replace(/\W/g, '')}`);
      const engine = new Engine(defineJob<SourceRecord>({
        name: 'live', source: wrapped, sinks: [memorySink()], stageOutputs: false,
        transform: (records) => {
          seen.push(...records);
          return records;
        },
        batch: { maxWaitMs: 0, pollIntervalMs: 20 },
      }), { checkpointDir: dir });
      const running = engine.run();
      running.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
      await until('the first records', () => seen.length === 5);
      // More records, so that the next batch plans and reads a range while the topic goes.
      await produce(topic, Array.from({ length: 5 }, (_, i) => ({ value: `w${i}`, partition: 0 })));
      armed = true;
      if (typeof phase === 'object') setTimeout(() => void remove(), phase.afterMs);
      await expect(running).rejects.toMatchObject({ code: 'TIDEMARK_SOURCE_WENT_BACKWARDS', exitCode: 11, message: expect.stringContaining(`${topic}/0`) });
      await deleted;
      const store = await openCheckpoint(dir, { readOnly: true });
      // Never reset: the position is where a committed batch left it.
      expect([5, 10]).toContain((await store.load()).positions[`${topic}/0`]);
      await store.close();
    }, 60_000);

  it('a topic that does not exist: BadConfigError naming it (tidemark never creates topics)', async () => {
    const topic = uniqueTopic('never');
    await expect(runKafkaJob(join(root, 'never'), { topics: [topic], groupId: `${topic}-job` }, { once: true })).rejects.toMatchObject({
      code: 'TIDEMARK_BAD_CONFIG', message: expect.stringContaining(`Kafka topic ${topic} does not exist`),
    });
    expect((await (await admin()).listTopics()).includes(topic)).toBe(false);
  });

  it('no group coordinator yet (a new cluster creating __consumer_offsets): the reader starts its consumer again within the reconnect budget', async () => {
    const topic = uniqueTopic('nocoord');
    await createTopic(topic, 2);
    await produce(topic, [0, 1].flatMap((p) => Array.from({ length: 50 }, (_, i) => ({ value: `p${p}-r${i}`, partition: p }))));
    const coordinator = refuseCoordinator(`${topic}-job`, 3_000);
    try {
      const run = await runKafkaJob(join(root, 'nocoord'), { topics: [topic], groupId: `${topic}-job` }, { once: true });
      expect(coordinator.refused()).toBeGreaterThan(0);
      expect(run.summary.records).toBe(100);
      expect(run.records.flat().map((r) => r.value?.toString()).sort()).toEqual([0, 1].flatMap((p) => Array.from({ length: 50 }, (_, i) => `p${p}-r${i}`)).sort());
    } finally {
      coordinator.restore();
    }
  }, 60_000);

  it('no group coordinator yet: group mode\'s membership starts its consumer again and joins, within the reconnect budget', async () => {
    const topic = uniqueTopic('nocoordg');
    await createTopic(topic, 2);
    const source = kafkaSource({ brokers: brokers(), topics: [topic], groupId: `${topic}-group` });
    const coordinator = refuseCoordinator(`${topic}-group`, 3_000);
    const membership = await source.joinGroup(silentLogger);
    try {
      const assignment = await membership.start();
      expect(coordinator.refused()).toBeGreaterThan(0);
      expect(assignment.partitions).toEqual([{ topic, partition: 0 }, { topic, partition: 1 }]);
    } finally {
      coordinator.restore();
      await membership.stop();
      await source.close();
    }
  }, 60_000);
});
