// Transform failures through the engine: a poison record under 'fail' and 'dead-letter',
// and jobs that do not stage their outputs.
import { join } from 'node:path';
import {
  defineJob, Engine, generatorSource, isTidemarkError, memorySink, TransformError,
  type DeadLetter, type Sink, type SinkBatch, type SourceRecord,
} from 'tidemark';
import { openCheckpoint } from '../../checkpoint/store';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-transform-');
let n = 0;
const fresh = (): string => join(root, `cp${++n}`);

const POISON = new Set(['generated/1@17', 'generated/2@3', 'generated/0@29']);
const isPoison = (r: SourceRecord): boolean => POISON.has(`${r.topic}/${r.partition}@${r.offset}`);
const id = (r: SourceRecord): string => `${r.partition}:${r.offset}`;

/** A per-record transform that throws on poison records. */
const perRecord = (records: SourceRecord[]): string[] => records.map((r) => {
  if (isPoison(r)) throw new Error(`cannot parse ${id(r)}`);
  return id(r);
});

const source = () => generatorSource({ partitions: 3, size: 30 });
const allIds = (except: Set<string> = new Set()): string[] =>
  [0, 1, 2].flatMap((p) => Array.from({ length: 30 }, (_, o) => `${p}:${o}`)).filter((x) => !except.has(x));

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => {
    throw new Error('expected a failure');
  }, (e: unknown) => e);
}

describe("onTransformError: 'fail'", () => {
  it('stops with a TransformError naming the exact partition and offset; the batch is re-run exactly after the fix', async () => {
    const dir = fresh();
    const sink = memorySink<string>();
    const poisonOnlyAt17 = (records: SourceRecord[]) => records.map((r) => {
      if (r.partition === 1 && r.offset === 17) throw new Error('unexpected token in record');
      return id(r);
    });
    const job = defineJob({ name: 'tf', source: source(), sinks: [sink], transform: poisonOnlyAt17, batch: { maxRecordsPerPartition: 10 } });
    const err = await failure(new Engine(job, { checkpointDir: dir }).run({ once: true }));
    expect(err).toBeInstanceOf(TransformError);
    expect(isTidemarkError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'TIDEMARK_TRANSFORM_FAILED', exitCode: 8 });
    expect((err as Error).message).toContain('batch 2 at generated/1 offset 17: unexpected token in record');
    expect((err as Error).message).toContain("onTransformError: 'dead-letter'");
    // Batch 1 is delivered; batch 2 delivered nothing and stays planned.
    expect([...sink.batches.keys()]).toEqual([1]);
    const store = await openCheckpoint(dir, { readOnly: true });
    const view = await store.load();
    await store.close();
    expect(view.lastCommitted).toBe(1);
    expect(view.inFlight).toMatchObject({ id: 2, state: 'planned' });
    const ranges = view.inFlight!.ranges;

    // The fixed transform re-runs batch 2 with exactly its recorded ranges.
    const seen: Array<{ batchId: number; ranges: unknown }> = [];
    const fixed = defineJob({
      name: 'tf', source: source(), sinks: [sink], batch: { maxRecordsPerPartition: 10 },
      transform: (records, ctx) => {
        seen.push({ batchId: ctx.batchId, ranges: ctx.ranges });
        return records.map(id);
      },
    });
    const summary = await new Engine(fixed, { checkpointDir: dir }).run({ once: true });
    expect(seen[0]).toEqual({ batchId: 2, ranges });
    expect(summary.lastCommitted).toBe(3);
    expect(sink.all().sort()).toEqual(allIds().sort());
  });

  it('is the default', () => {
    expect(defineJob({ name: 'd', source: source(), sinks: [memorySink()], transform: perRecord }).onTransformError).toBe('fail');
  });

  it('a failure no single record explains names the batch as a whole', async () => {
    const job = defineJob({
      name: 'whole', source: source(), sinks: [memorySink()], batch: { maxRecordsPerPartition: 10 },
      transform: (records) => {
        if (records.length > 4) throw new Error('too many at once');
        return records.map(id);
      },
    });
    const err = await failure(new Engine(job, { checkpointDir: fresh() }).run({ once: true }));
    expect(err).toBeInstanceOf(TransformError);
    expect((err as Error).message).toContain('batch 1 at the batch as a whole (no single record fails alone): too many at once');
  });

  it('a transform that returns something other than an array is a TransformError', async () => {
    const job = defineJob({ name: 'notarray', source: source(), sinks: [memorySink()], transform: (() => 42) as unknown as () => string[] });
    const err = await failure(new Engine(job, { checkpointDir: fresh() }).run({ once: true }));
    expect(err).toBeInstanceOf(TransformError);
    expect((err as Error).message).toContain('not an array');
  });
});

describe("onTransformError: 'dead-letter'", () => {
  it('routes exactly the poison records to the dead-letter sink; the main sink gets the transform of the rest', async () => {
    const main = memorySink<string>('main');
    const dead = memorySink<DeadLetter>('dead');
    const job = defineJob({
      name: 'dl', source: source(), sinks: [main], transform: perRecord, batch: { maxRecordsPerPartition: 10 },
      onTransformError: 'dead-letter', deadLetterSink: dead,
    });
    const stats: Array<{ id: number; outputs: number; deadLetters: number }> = [];
    const summary = await new Engine(job, { checkpointDir: fresh(), onBatch: (s) => stats.push({ id: s.id, outputs: s.outputs, deadLetters: s.deadLetters }) }).run({ once: true });
    expect(summary.records).toBe(90);
    const poisonIds = new Set(['1:17', '2:3', '0:29']);
    expect(main.all().sort()).toEqual(allIds(poisonIds).sort());

    const letters = dead.all();
    expect(letters).toHaveLength(3);
    expect(letters.map((d) => `${d.topic}/${d.partition}@${d.offset}`).sort()).toEqual([...POISON].sort());
    const l17 = letters.find((d) => d.offset === 17)!;
    expect(l17).toEqual({
      topic: 'generated', partition: 1, offset: 17, key: `k${17 % 97}`, value: source().record(1, 17).value!.toString(),
      error: 'cannot parse 1:17', batchId: 2,
    });
    // Each poison record is dead-lettered in the batch that read it, and only there.
    expect([...dead.batches.keys()].sort()).toEqual([1, 2, 3]);
    expect(stats).toEqual([{ id: 1, outputs: 29, deadLetters: 1 }, { id: 2, outputs: 29, deadLetters: 1 }, { id: 3, outputs: 29, deadLetters: 1 }]);
  });

  it('an aggregating transform aggregates the batch without its poison records', async () => {
    const main = memorySink<{ batch: number; count: number; sum: number }>('agg');
    const dead = memorySink<DeadLetter>('dead');
    const job = defineJob({
      name: 'agg', source: source(), sinks: [main], onTransformError: 'dead-letter', deadLetterSink: dead,
      transform: (records, ctx) => {
        if (records.some(isPoison)) throw new Error('poison in batch');
        return [{ batch: ctx.batchId, count: records.length, sum: records.reduce((a, r) => a + r.offset, 0) }];
      },
    });
    await new Engine(job, { checkpointDir: fresh() }).run({ once: true });
    const total = 3 * (29 * 30) / 2 - (17 + 3 + 29);
    expect(main.all()).toEqual([{ batch: 1, count: 87, sum: total }]);
    expect(dead.all().map((d) => d.offset).sort((a, b) => a - b)).toEqual([3, 17, 29]);
  });

  it('a batch without poison records writes nothing to the dead-letter sink', async () => {
    const dead = memorySink<DeadLetter>('dead');
    const job = defineJob({
      name: 'clean', source: source(), sinks: [memorySink<string>('main')], transform: (rs) => rs.map(id),
      onTransformError: 'dead-letter', deadLetterSink: dead,
    });
    await new Engine(job, { checkpointDir: fresh() }).run({ once: true });
    expect(dead.writes).toBe(0);
  });

  it('requires a dead-letter sink', () => {
    expect(() => defineJob({ name: 'x', source: source(), sinks: [memorySink()], transform: perRecord, onTransformError: 'dead-letter' }))
      .toThrow(/deadLetterSink/);
  });
});

/** A sink that fails its first `failures` writes, then behaves like a memory sink. */
function flakySink(failures: number): Sink<string> & { readonly batches: Map<number, readonly string[]> } {
  const batches = new Map<number, readonly string[]>();
  let left = failures;
  return {
    name: 'flaky',
    batches,
    async write(batch: SinkBatch<string>) {
      if (left-- > 0) throw new Error('connection reset');
      batches.set(batch.id, [...batch.outputs]);
    },
  };
}

describe('stageOutputs: false', () => {
  it('delivers the same outputs as a staged job', async () => {
    const staged = memorySink<string>();
    const unstaged = memorySink<string>();
    const make = (sink: typeof staged, stageOutputs: boolean) => defineJob({
      name: 'st', source: source(), sinks: [sink], transform: (rs) => rs.map(id), batch: { maxRecordsPerPartition: 7 }, stageOutputs,
    });
    await new Engine(make(staged, true), { checkpointDir: fresh() }).run({ once: true });
    const dir = fresh();
    const summary = await new Engine(make(unstaged, false), { checkpointDir: dir }).run({ once: true });
    expect(unstaged.all()).toEqual(staged.all());
    expect(unstaged.all()).toHaveLength(90);
    expect(summary.positions).toEqual({ 'generated/0': 30, 'generated/1': 30, 'generated/2': 30 });
  });

  it('a staged batch without outputs is recomputed from its ranges on restart', async () => {
    const dir = fresh();
    let executions = 0;
    const make = (sink: Sink<string>) => defineJob({
      name: 'st2', source: source(), sinks: [sink], stageOutputs: false, sinkAttempts: 1, batch: { maxRecordsPerPartition: 10 },
      transform: (rs: SourceRecord[]) => {
        executions++;
        return rs.map(id);
      },
    });
    const err = await failure(new Engine(make(flakySink(1)), { checkpointDir: dir }).run({ once: true }));
    expect(err).toMatchObject({ code: 'TIDEMARK_SINK_FAILED', exitCode: 9 });
    let store = await openCheckpoint(dir, { readOnly: true });
    const view = await store.load();
    await store.close();
    expect(view.inFlight).toMatchObject({ id: 1, state: 'staged', recordsIn: 30 });
    expect(view.inFlight!.stagedChunks).toBeUndefined();
    // Batch 2 may have been planned (and run) while batch 1 was delivered: each batch in flight ran once.
    const inFlight = view.flight.filter((b) => b.state === 'staged').length;
    expect(inFlight).toBeGreaterThanOrEqual(1);
    expect(executions).toBe(inFlight);

    const sink = flakySink(0);
    const summary = await new Engine(make(sink), { checkpointDir: dir }).run({ once: true });
    expect(executions).toBe(inFlight + 3); // batch 1 recomputed, then batches 2 and 3
    expect(summary.lastCommitted).toBe(3);
    expect(sink.batches.get(1)).toEqual([...Array.from({ length: 10 }, (_, o) => `0:${o}`), ...Array.from({ length: 10 }, (_, o) => `1:${o}`), ...Array.from({ length: 10 }, (_, o) => `2:${o}`)]);
    expect([...sink.batches.values()].flat().sort()).toEqual(allIds().sort());
    store = await openCheckpoint(dir, { readOnly: true });
    expect((await store.load()).inFlight).toBeUndefined();
    await store.close();
  });
});
