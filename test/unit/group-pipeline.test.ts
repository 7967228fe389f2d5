// Group mode pipelined (docs/scale-out.md "Pipelining"), against an in-memory group: batch
// N + 1 of another partition is read and transformed while N is delivered; finishes run in id
// order; a fenced oldest batch is dropped and the next goes on; a checkpoint left with two
// batches in flight is carried through by the takeover rules, each batch kept or dropped in
// id order.
import { join } from 'node:path';
import { defineJob, GroupEngine, type Sink, type SinkBatch } from 'tidemark';
import { inspectCheckpoint } from '../../checkpoint/inspect';
import { parsePlan } from '../../recovery/handoff';
import { PartitionFencedError } from '../../src/errors';
import { silentLogger } from '../../src/log';
import { GroupLog } from '../support/group-log';
import type { MemoryLog } from '../support/memory-source';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-group-pipeline-');

/** A sink that keeps each write (range and outputs) and may act on a write first. */
function keepingSink(before?: (b: SinkBatch<string>) => Promise<void>): Sink<string> & { writes: Array<{ id: number; partition: number; from: number; until: number; outputs: readonly string[] }> } {
  const writes: Array<{ id: number; partition: number; from: number; until: number; outputs: readonly string[] }> = [];
  return {
    name: 'keep', writes,
    async write(b) {
      await before?.(b);
      const r = b.ranges[0]!;
      writes.push({ id: b.id, partition: r.partition, from: r.from, until: r.until, outputs: b.outputs });
    },
    async claim() {}, // one daemon, no handoff: nothing to fence (group mode refuses a sink without claim)
  };
}

/** Signals once the transform was called for batch `id`. */
function transformed(): { seen: (id: number) => void; when: (id: number) => Promise<void> } {
  const waiters = new Map<number, () => void>();
  const promises = new Map<number, Promise<void>>();
  const get = (id: number): Promise<void> => {
    if (!promises.has(id)) promises.set(id, new Promise((resolve) => waiters.set(id, resolve)));
    return promises.get(id)!;
  };
  return { seen: (id) => void (get(id), waiters.get(id)!()), when: get };
}

let execution = 0;
function groupJob(source: GroupLog, sink: Sink<string>, maxInFlight: number, onTransform?: (id: number) => void) {
  return defineJob({
    name: 'gp', source: source as unknown as MemoryLog, sinks: [sink], scaleOut: 'group', sinkAttempts: 1, // a failed write fails the batch at once
    batch: { maxRecordsPerPartition: 4, minRecords: 1, maxWaitMs: 0, maxInFlight },
    // stamped with its execution: a redelivery of staged outputs is told from a new run
    transform: (records, ctx) => {
      onTransform?.(ctx.batchId);
      const run = ++execution;
      return records.map((r) => `${r.value!.toString()}@${run}`);
    },
  });
}

const offsetsOf = (writes: ReadonlyArray<{ partition: number; outputs: readonly string[] }>, partition: number): string[] =>
  writes.filter((w) => w.partition === partition).flatMap((w) => w.outputs.map((o) => o.split('@')[0]!));
const all = (partition: number, n: number): string[] => Array.from({ length: n }, (_, i) => `${partition}:${i}`);

it('reads and transforms the next partition\'s batch while the one before is delivered, and finishes them in id order', async () => {
  const source = new GroupLog(2, 1, [0, 1]);
  source.append(0, 12);
  source.append(1, 12);
  const t = transformed();
  // batch 1 is delivered only once batch 2 was transformed: one batch at a time would never get there
  const sink = keepingSink(async (b) => (b.id === 1 ? t.when(2) : undefined));
  const summary = await new GroupEngine(groupJob(source, sink, 2, t.seen), { checkpointDir: join(root, 'pipelined'), logger: silentLogger }).run({ once: true });
  expect(summary.lastCommitted).toBe(6);
  expect(sink.writes.map((w) => w.id)).toEqual([1, 2, 3, 4, 5, 6]);
  expect(offsetsOf(sink.writes, 0)).toEqual(all(0, 12));
  expect(offsetsOf(sink.writes, 1)).toEqual(all(1, 12));
  // never two batches of one partition in flight: per partition, each plan is followed by its range's end before the next plan
  for (const p of [0, 1]) {
    const commits = source.history.filter((c) => c.partition === p);
    expect(commits.map((c) => `${c.plan ? 'plan' : 'done'} ${c.offset}`)).toEqual(['plan 0', 'done 4', 'plan 4', 'done 8', 'plan 8', 'done 12']);
  }
});

it('maxInFlight 1 runs one batch at a time', async () => {
  const source = new GroupLog(2, 1, [0, 1]);
  source.append(0, 8);
  source.append(1, 8);
  const events: string[] = [];
  const sink = keepingSink(async (b) => void events.push(`write ${b.id}`));
  await new GroupEngine(groupJob(source, sink, 1, (id) => events.push(`transform ${id}`)), { checkpointDir: join(root, 'one'), logger: silentLogger }).run({ once: true });
  expect(events).toEqual(['transform 1', 'write 1', 'transform 2', 'write 2', 'transform 3', 'write 3', 'transform 4', 'write 4']);
});

/** Two partitions of `n` records each, and a sink whose write of batch 1 throws `err` once batch 2 (the other partition) was transformed. */
function firstWriteFails(n: number, err: Error) {
  const source = new GroupLog(2, 1, [0, 1]);
  source.append(0, n);
  source.append(1, n);
  const t = transformed();
  const sink = keepingSink(async (b) => {
    if (b.id !== 1) return;
    await t.when(2);
    throw err;
  });
  return { source, t, sink };
}

it('a fenced oldest batch is dropped with its partition; the batch in flight after it goes on', async () => {
  const { source, t, sink } = firstWriteFails(8, new PartitionFencedError('the test sink', 't', 0, 1, 2));
  const summary = await new GroupEngine(groupJob(source, sink, 2, t.seen), { checkpointDir: join(root, 'fenced'), logger: silentLogger }).run({ once: true });
  expect(offsetsOf(sink.writes, 0)).toEqual([]);
  expect(offsetsOf(sink.writes, 1)).toEqual(all(1, 8));
  expect(summary.lastCommitted).toBe(3); // 1 discarded, 2 and 3 (partition 1) committed
  expect(summary.positions).toEqual({ 't/1': 8 });
  expect(source.commits.get('t/0')).toEqual({ offset: 0, metadata: expect.stringContaining('tidemark-plan') }); // left for the new owner to rerun
  // inspect tells this drop from a `tidemark reset --discard-in-flight`
  const report = await inspectCheckpoint(join(root, 'fenced'));
  expect(report.recentBatches.find((b) => b.id === 1)).toMatchObject({ discarded: true, discardedBy: 'handoff' });
});

describe('a checkpoint left with two batches in flight', () => {
  /** Runs until batch 1's delivery fails while batch 2 (the other partition) is staged; returns the source with both plans in the group. */
  async function twoInFlight(dir: string): Promise<{ source: GroupLog; staged: Map<number, string[]> }> {
    const { source, t, sink } = firstWriteFails(4, new Error('the sink is down'));
    const staged = new Map<number, string[]>();
    const stamp = execution;
    await expect(new GroupEngine(groupJob(source, sink, 2, t.seen), { checkpointDir: dir, logger: silentLogger }).run({ once: true })).rejects.toThrow('the sink is down');
    // the executions of batches 1 and 2 stamped their outputs
    staged.set(0, all(0, 4).map((o) => `${o}@${stamp + 1}`));
    staged.set(1, all(1, 4).map((o) => `${o}@${stamp + 2}`));
    for (const p of [0, 1]) expect(parsePlan(source.commits.get(`t/${p}`)!.metadata)).toMatchObject({ from: 0, until: 4 });
    return { source, staged };
  }

  /** Restarts the checkpoint left by twoInFlight with only `assigned` given to it, until nothing is left to do. */
  async function recoverWith(name: string, assigned: readonly number[]) {
    const dir = join(root, name);
    const { source, staged } = await twoInFlight(dir);
    source.assign(2, assigned);
    const sink = keepingSink();
    const summary = await new GroupEngine(groupJob(source, sink, 2), { checkpointDir: dir, logger: silentLogger }).run({ once: true });
    return { writes: sink.writes.map((w) => [w.id, w.outputs]), summary, staged };
  }

  it('both partitions assigned again: both are redelivered as staged, in id order', async () => {
    const { writes, summary, staged } = await recoverWith('both', [0, 1]);
    expect(writes).toEqual([[1, staged.get(0)], [2, staged.get(1)]]);
    expect(summary).toMatchObject({ lastCommitted: 2, positions: { 't/0': 4, 't/1': 4 } });
  });

  it('only the second batch\'s partition assigned: the first is discarded, the second redelivered as staged', async () => {
    const { writes, summary, staged } = await recoverWith('second', [1]);
    expect(writes).toEqual([[2, staged.get(1)]]);
    expect(summary).toMatchObject({ lastCommitted: 2, positions: { 't/1': 4 } });
  });

  it('only the first batch\'s partition assigned: it is redelivered as staged, the second dropped in its turn', async () => {
    const { writes, summary, staged } = await recoverWith('first', [0]);
    expect(writes).toEqual([[1, staged.get(0)]]);
    expect(summary).toMatchObject({ lastCommitted: 2, positions: { 't/0': 4 } });
  });
});
