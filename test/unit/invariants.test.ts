// The runtime assertions of checkpoint/invariants.ts: the store refuses, before writing, a
// batch that does not continue the committed state (a bug upstream), with InvariantError
// (exit code 1), and nothing retries it.
import { InvariantError, isTidemarkError } from '../../checkpoint/errors';
import type { BatchRecord, CheckpointMeta, Range } from '../../checkpoint/model';
import { CheckpointStore } from '../../checkpoint/store';
import { defineJob, Engine, type Sink } from 'tidemark';
import { retry } from '../../src/retry';
import { MemoryLog } from '../support/memory-source';
import { PowerLossKV } from '../support/power-loss-kv';

const range = (partition: number, from: number, until: number): Range => ({ topic: 't', partition, from, until });
const batch = (id: number, ranges: Range[], lost?: Range[]): BatchRecord =>
  ({ id, state: 'planned', ranges, fingerprint: 'f', plannedAt: 0, ...(lost ? { lost } : {}) });

const meta: CheckpointMeta = { format: 1, job: 'j', source: 's', sinks: [], fingerprint: 'f', fingerprints: [], resets: [], createdAt: 0 };

/** A store with batch 1 committed: t/0 at 10, t/1 at 7. */
async function storeAfterOneBatch(): Promise<{ kv: PowerLossKV; store: CheckpointStore }> {
  const kv = new PowerLossKV();
  const store = new CheckpointStore(kv, 'cp');
  await store.writeMeta(meta);
  const b1 = batch(1, [range(0, 0, 10), range(1, 0, 7)]);
  await store.planBatch(b1);
  await store.commitBatch(await store.stageBatch(b1, { outputs: ['x'] }), { 't/0': 10, 't/1': 7 });
  return { kv, store };
}

async function refused(kv: PowerLossKV, write: () => Promise<unknown>, detail: RegExp): Promise<void> {
  const writes = kv.log.length;
  const err = await write().then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InvariantError);
  expect(err).toMatchObject({ code: 'TIDEMARK_INVARIANT_BROKEN', exitCode: 1 });
  expect((err as Error).message).toMatch(/^invariant broken: /);
  expect((err as Error).message).toMatch(detail);
  expect((err as Error).message).toContain('this is a bug in tidemark — please report it with `tidemark inspect cp` output');
  expect(kv.log.length).toBe(writes); // refused before the write
}

describe('commitBatch asserts that the batch continues the committed state', () => {
  it('refuses a commit out of order (an id that does not follow the last committed one)', async () => {
    const { kv, store } = await storeAfterOneBatch();
    await refused(kv, () => store.commitBatch(batch(3, [range(0, 10, 12)]), { 't/0': 12, 't/1': 7 }), /batch 3 does not follow the last committed batch 1/);
    await refused(kv, () => store.commitBatch(batch(1, [range(0, 10, 12)]), { 't/0': 12, 't/1': 7 }), /batch 1 does not follow the last committed batch 1/);
    expect((await store.load()).lastCommitted).toBe(1);
  });

  it("refuses a range whose `from` is not its partition's position (a gap or an overlap)", async () => {
    const { kv, store } = await storeAfterOneBatch();
    await refused(kv, () => store.commitBatch(batch(2, [range(0, 11, 12)]), { 't/0': 12, 't/1': 7 }), /reads t\/0 from offset 11, but the partition's position is 10/);
    await refused(kv, () => store.commitBatch(batch(2, [range(1, 6, 9)]), { 't/0': 10, 't/1': 9 }), /reads t\/1 from offset 6, but the partition's position is 7/);
  });

  it('refuses positions that are not the ranges\' ends, or that move back', async () => {
    const { kv, store } = await storeAfterOneBatch();
    await refused(kv, () => store.commitBatch(batch(2, [range(0, 10, 12)]), { 't/0': 13, 't/1': 7 }), /commits t\/0 at position 13, not at its range's end 12/);
    await refused(kv, () => store.commitBatch(batch(2, [range(0, 10, 12)]), { 't/0': 12, 't/1': 3 }), /moves t\/1 back from position 7 to 3/);
    await refused(kv, () => store.commitBatch(batch(2, [range(0, 10, 12)]), { 't/0': 12 }), /moves t\/1 back from position 7 to undefined/);
  });

  it('accepts a range that starts after offsets recorded as lost, and a new partition anywhere', async () => {
    const { store } = await storeAfterOneBatch();
    const lost = [range(0, 10, 15), range(0, 15, 20)];
    const b2 = batch(2, [range(0, 20, 25), range(2, 40, 41)], lost);
    await store.planBatch(b2);
    await store.commitBatch(await store.stageBatch(b2, undefined), { 't/0': 25, 't/1': 7, 't/2': 41 }, lost);
    expect(await store.load()).toMatchObject({ lastCommitted: 2, positions: { 't/0': 25, 't/1': 7, 't/2': 41 } });
  });

  it('asserts on a store that was not loaded first (it reads the committed state), and after a reset', async () => {
    const { kv, store } = await storeAfterOneBatch();
    const reopened = new CheckpointStore(kv, 'cp');
    await refused(kv, () => reopened.commitBatch(batch(2, [range(0, 9, 12)]), { 't/0': 12, 't/1': 7 }), /from offset 9, but the partition's position is 10/);
    await store.resetPositions({ 't/0': 3 }, 1, [], meta);
    await store.planBatch(batch(2, [range(0, 3, 5)]));
    await refused(kv, () => store.planBatch(batch(2, [range(0, 10, 12)])), /from offset 10, but the partition's position is 3/);
  });
});

describe('planBatch and stageBatch assert the same', () => {
  it('refuses an id gap and a range that does not continue its position, before writing', async () => {
    const { kv, store } = await storeAfterOneBatch();
    await refused(kv, () => store.planBatch(batch(3, [range(0, 10, 12)])), /batch 3 does not follow the last committed batch 1/);
    await refused(kv, () => store.stageBatch(batch(2, [range(1, 8, 9)]), { outputs: [] }), /reads t\/1 from offset 8, but the partition's position is 7/);
    await refused(kv, () => store.planBatch(batch(2, [range(0, 10, 12), range(0, 12, 14)])), /batch 2 has two ranges for t\/0/);
    await refused(kv, () => store.planBatch(batch(2, [range(0, 10, 9)])), /t\/0 \[10, 9\), which ends before it starts/);
  });
});

describe('batches in flight together (pipelined)', () => {
  it('a batch continues the one in flight before it; commits stay in id order; load() finds both in flight', async () => {
    const { kv, store } = await storeAfterOneBatch();
    const b2 = batch(2, [range(0, 10, 12)]);
    await store.planBatch(b2);
    const staged2 = await store.stageBatch(b2, { outputs: ['y'] });
    // Batch 3 continues batch 2's ends, not the committed positions, and only in id order.
    await refused(kv, () => store.planBatch(batch(3, [range(0, 10, 14)])), /reads t\/0 from offset 10, but the partition's position is 12/);
    await refused(kv, () => store.planBatch(batch(4, [range(0, 12, 14)])), /batch 4 does not follow the last committed batch 2/);
    const b3 = batch(3, [range(0, 12, 14), range(1, 7, 9)]);
    await store.planBatch(b3);
    const staged3 = await store.stageBatch(b3, { outputs: ['z'] });
    await refused(kv, () => store.commitBatch(staged3, { 't/0': 14, 't/1': 9 }), /batch 3 does not follow the last committed batch 1/);
    const view = await new CheckpointStore(kv, 'cp').load();
    expect(view.flight.map((b) => [b.id, b.state])).toEqual([[2, 'staged'], [3, 'staged']]);
    expect(view.inFlight?.id).toBe(2);
    // Batch 3's STAGE issued while batch 2's COMMIT is being written: each continues what it must.
    await Promise.all([store.commitBatch(staged2, { 't/0': 12, 't/1': 7 }), store.planBatch(batch(4, [range(1, 9, 10)]))]);
    await store.commitBatch(staged3, { 't/0': 14, 't/1': 9 });
    expect((await new CheckpointStore(kv, 'cp').load()).flight.map((b) => b.id)).toEqual([4]);
  });

  it('a record past a missing one is not in flight (a PLAN a power loss left after dropping the one before)', async () => {
    const { kv, store } = await storeAfterOneBatch();
    await store.planBatch(batch(2, [range(0, 10, 12)]));
    await store.planBatch(batch(3, [range(0, 12, 13)]));
    kv.powerLoss((n) => n === 2); // of the unsynced writes (batch 1 PLAN, batch 2 PLAN, batch 3 PLAN), keeps the last only
    const view = await new CheckpointStore(kv, 'cp').load();
    expect(view.flight).toEqual([]);
    expect(view.lastCommitted).toBe(1);
  });
});

describe('a broken invariant is never retried', () => {
  it('retry() throws it at once, whatever `retryable` says', async () => {
    let calls = 0;
    const err = await retry(async () => {
      calls++;
      throw new InvariantError('cp', 'test');
    }, { baseMs: 1, maxMs: 1, attempts: 5, retryable: () => true }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(InvariantError);
    expect(calls).toBe(1);
  });

  it('the engine stops with it, unwrapped, when it comes out of a sink write (no sink retries)', async () => {
    let calls = 0;
    const sink: Sink<string> = {
      name: 'broken',
      write: async () => {
        calls++;
        throw new InvariantError('cp', 'from a sink');
      },
    };
    const log = new MemoryLog('t', 1);
    log.append(0, 3);
    const engine = new Engine(defineJob<string>({
      name: 'inv', source: log, sinks: [sink], transform: (rs) => rs.map((r) => String(r.offset)), sinkAttempts: 5,
    }), { store: new CheckpointStore(new PowerLossKV(), 'cp') });
    const err = await engine.run({ once: true }).then(() => undefined, (e: unknown) => e);
    expect(isTidemarkError(err) && err.code).toBe('TIDEMARK_INVARIANT_BROKEN');
    expect(calls).toBe(1);
  });
});
