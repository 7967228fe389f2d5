// The checkpoint store over a real LevelDB: each transition of a batch, what load()
// returns after it, staged outputs, retention, lost ranges, damaged checkpoints and the
// durability rule (STAGE and COMMIT are synced, PLAN is not).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serialize } from 'node:v8';
import { randomBytes } from 'node:crypto';
import { LevelKV, type KV, type KVOp } from '../../checkpoint/kv';
import { keys } from '../../checkpoint/keys';
import { seal, SEALED_TAG } from '../../checkpoint/codec';
import { CheckpointStore, openCheckpoint, FORMAT_VERSION, sizeOnDisk } from '../../checkpoint/store';
import { RETAIN_HISTORY, type BatchRecord, type CheckpointMeta, type Range } from '../../checkpoint/model';
import { BadConfigError, CorruptCheckpointError } from '../../checkpoint/errors';
import { inspectCheckpoint } from '../../checkpoint/inspect';
import { sideLogFile } from '../../checkpoint/side-log';
import { formatReport } from '../../src/cli/inspect';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-store-');
let n = 0;
const fresh = (): string => join(root, `cp${++n}`);

const meta: CheckpointMeta = {
  format: FORMAT_VERSION, job: 'j', source: 'src', sinks: ['out'], fingerprint: 'f1',
  fingerprints: [{ fingerprint: 'f1', since: 1, note: 'first run' }], resets: [], createdAt: 1,
};

const range = (partition: number, from: number, until: number): Range => ({ topic: 't', partition, from, until });
const planned = (id: number, ranges: Range[]): BatchRecord => ({ id, state: 'planned', ranges, fingerprint: 'f1', plannedAt: Date.now() });
const untils = (ranges: Range[], base: Record<string, number> = {}): Record<string, number> =>
  ({ ...base, ...Object.fromEntries(ranges.map((r) => [`${r.topic}/${r.partition}`, r.until])) });

async function keysIn(kv: KV, range: { gte: string; lt: string }): Promise<string[]> {
  const found: string[] = [];
  for await (const [k] of kv.entries(range)) found.push(k);
  return found;
}

/** Runs one batch all the way through; returns the positions after it. */
async function runBatch(store: CheckpointStore, id: number, ranges: Range[], outputs: unknown[], base: Record<string, number> = {}, lost: Range[] = []): Promise<Record<string, number>> {
  const b = planned(id, ranges);
  await store.planBatch(b);
  const staged = await store.stageBatch(b, { out: outputs });
  const positions = untils(ranges, base);
  await store.commitBatch(staged, positions, lost);
  return positions;
}

describe('CheckpointStore transitions over LevelDB', () => {
  it('an empty checkpoint loads as nothing committed, nothing in flight', async () => {
    const store = await openCheckpoint(fresh());
    try {
      expect(await store.load()).toEqual({ meta: undefined, positions: {}, lastCommitted: 0, inFlight: undefined, flight: [] });
    } finally {
      await store.close();
    }
  });

  it('plan → stage → commit: load() shows each state, and the state survives a reopen', async () => {
    const dir = fresh();
    const ranges = [range(0, 0, 10), range(1, 5, 7)];
    let store = await openCheckpoint(dir);
    try {
      await store.writeMeta(meta);
      const b = planned(1, ranges);
      await store.planBatch(b);
      let view = await store.load();
      expect(view.meta).toEqual(meta);
      expect(view.lastCommitted).toBe(0);
      expect(view.positions).toEqual({});
      expect(view.inFlight).toMatchObject({ id: 1, state: 'planned', ranges });
      expect(view.inFlight!.stagedChunks).toBeUndefined();

      const staged = await store.stageBatch({ ...b, recordsIn: 12 }, { out: ['a', 'b', 'c'] });
      view = await store.load();
      expect(view.inFlight).toMatchObject({ id: 1, state: 'staged', ranges, recordsIn: 12, stagedChunks: { out: 1 } });
      expect(view.positions).toEqual({});
      expect(await store.readStagedOutputs(view.inFlight!)).toEqual({ out: ['a', 'b', 'c'] });

      await store.commitBatch(staged, { 't/0': 10, 't/1': 7 });
      view = await store.load();
      expect(view).toMatchObject({ lastCommitted: 1, positions: { 't/0': 10, 't/1': 7 }, inFlight: undefined });
      const [last] = await store.batches(1);
      expect(last).toMatchObject({ id: 1, state: 'committed', ranges });
      expect(typeof last!.committedAt).toBe('number');

      // The next batch is planned on top of the committed one, and a reopen sees it.
      await store.planBatch(planned(2, [range(0, 10, 20)]));
    } finally {
      await store.close();
    }
    store = await openCheckpoint(dir);
    try {
      const view = await store.load();
      expect(view).toMatchObject({ lastCommitted: 1, positions: { 't/0': 10, 't/1': 7 } });
      expect(view.inFlight).toMatchObject({ id: 2, state: 'planned', ranges: [range(0, 10, 20)] });
    } finally {
      await store.close();
    }
  });

  it('a batch staged without outputs (stageOutputs: false) has no chunks and reads back as nothing', async () => {
    const store = await openCheckpoint(fresh());
    try {
      await store.writeMeta(meta);
      const b = planned(1, [range(0, 0, 3)]);
      await store.planBatch(b);
      await store.stageBatch(b, undefined);
      const view = await store.load();
      expect(view.inFlight).toMatchObject({ id: 1, state: 'staged' });
      expect(view.inFlight!.stagedChunks).toBeUndefined();
      expect(await store.readStagedOutputs(view.inFlight!)).toEqual({});
    } finally {
      await store.close();
    }
  });

  it('staged outputs round-trip: Buffers, nested objects, many chunks, several sinks', async () => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const store = new CheckpointStore(kv, dir, { chunkSize: 7 });
    try {
      await store.writeMeta(meta);
      const outputs = Array.from({ length: 100 }, (_, i) => ({
        i, page: `/p${i % 9}`, raw: Buffer.from([i, 255 - i, 0]), nested: { list: [i, { deep: [null, true, `s${i}`] }], at: new Date(1_700_000_000_000 + i) },
        big: BigInt(i) * 10n ** 20n, map: new Map([[`k${i}`, i]]), u: undefined,
      }));
      const other = ['x', 'y'];
      const b = planned(1, [range(0, 0, 100)]);
      await store.planBatch(b);
      const staged = await store.stageBatch(b, { out: outputs, other, empty: [] });
      expect(staged.stagedChunks).toEqual({ out: 15, other: 1, empty: 1 });
      expect(await keysIn(kv, keys.outputs)).toHaveLength(17);

      const back = await store.readStagedOutputs((await store.load()).inFlight!);
      expect(back.other).toEqual(other);
      expect(back.empty).toEqual([]);
      expect(back.out).toHaveLength(100);
      // Values v8 deserializes live in the main realm, not jest's: compare Maps by hand.
      const withoutMaps = (list: unknown[]) => list.map((o) => {
        const { map, ...rest } = o as (typeof outputs)[number];
        return { ...rest, map: [...map.entries()] };
      });
      expect(withoutMaps(back.out!)).toEqual(withoutMaps(outputs));
      const first = back.out![3] as (typeof outputs)[number];
      expect(Buffer.isBuffer(first.raw)).toBe(true);
      expect([...first.raw]).toEqual([3, 252, 0]);
      expect(Object.prototype.toString.call(first.nested.at)).toBe('[object Date]'); // v8 deserializes into the main realm
      expect(first.nested.at.getTime()).toBe(1_700_000_000_003);
      expect(first.map.get('k3')).toBe(3);
      expect('u' in first).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('commit deletes the batch\'s staged output keys', async () => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const store = new CheckpointStore(kv, dir, { chunkSize: 2 });
    try {
      await store.writeMeta(meta);
      const b = planned(1, [range(0, 0, 5)]);
      await store.planBatch(b);
      const staged = await store.stageBatch(b, { out: [1, 2, 3, 4, 5], dl: ['d'] });
      expect(await keysIn(kv, keys.outputs)).toHaveLength(4);
      await store.commitBatch(staged, { 't/0': 5 });
      expect(await keysIn(kv, keys.outputs)).toEqual([]);
      expect((await store.load()).inFlight).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('commit prunes batch records older than retainBatches', async () => {
    const dir = fresh();
    const store = await openCheckpoint(dir, { retainBatches: 3 });
    try {
      await store.writeMeta(meta);
      let positions: Record<string, number> = {};
      for (let id = 1; id <= 7; id++) positions = await runBatch(store, id, [range(0, (id - 1) * 10, id * 10)], [id], positions);
      const ids = (await store.batches()).map((b) => b.id);
      expect(ids).toEqual([7, 6, 5]);
      expect(await store.batches(2)).toHaveLength(2);
      expect((await store.load()).lastCommitted).toBe(7);
    } finally {
      await store.close();
    }
  });

  it('retainBatches lowered between runs: the next commit drops every batch record beyond the new limit', async () => {
    const dir = fresh();
    let positions: Record<string, number> = {};
    const first = await openCheckpoint(dir, { retainBatches: 10 });
    try {
      await first.writeMeta(meta);
      for (let id = 1; id <= 12; id++) positions = await runBatch(first, id, [range(0, (id - 1) * 10, id * 10)], [id], positions);
      expect((await first.batches()).map((b) => b.id)).toEqual([12, 11, 10, 9, 8, 7, 6, 5, 4, 3]);
    } finally {
      await first.close();
    }
    const second = await openCheckpoint(dir, { retainBatches: 3 });
    try {
      positions = await runBatch(second, 13, [range(0, 120, 130)], [13], positions);
      // Before 2026-11-30 only batch 10 went: 3 … 9 stayed for good.
      expect((await second.batches()).map((b) => b.id)).toEqual([13, 12, 11]);
    } finally {
      await second.close();
    }
  });

  it('commits that delete 16 MiB of staged outputs compact them away: the checkpoint does not keep their bytes', async () => {
    const dir = fresh();
    // Outputs staged in LevelDB itself (a store without a side log; batches an older build staged).
    const store = new CheckpointStore(await LevelKV.open(join(dir, 'db')), dir);
    try {
      await store.writeMeta(meta);
      let positions: Record<string, number> = {};
      // Incompressible outputs, so their bytes reach the tables as they are: ~5.6 MiB a batch, so the third commit compacts.
      const outputs = (id: number): string[] => Array.from({ length: 1024 }, (_, i) => randomBytes(4096).toString('base64') + `${id}:${i}`);
      for (let id = 1; id <= 3; id++) positions = await runBatch(store, id, [range(0, (id - 1) * 10, id * 10)], outputs(id), positions);
      // Before 2026-11-30 LevelDB kept ~17 MiB of the deleted outputs on disk.
      expect(await sizeOnDisk(join(dir, 'db'))).toBeLessThan(4 * 2 ** 20);
    } finally {
      await store.close();
    }
  });

  it('records lost ranges at commit, with their batch id', async () => {
    const store = await openCheckpoint(fresh());
    try {
      await store.writeMeta(meta);
      await runBatch(store, 1, [range(0, 40, 50)], ['a'], {}, [range(0, 0, 40)]);
      await runBatch(store, 2, [range(0, 50, 60), range(1, 9, 9)], ['b'], { 't/0': 50 }, [range(1, 3, 9)]);
      const lost = await store.lostRanges();
      expect(lost.map(({ at: _at, ...r }) => r)).toEqual([
        { topic: 't', partition: 0, from: 0, until: 40, batchId: 1 },
        { topic: 't', partition: 1, from: 3, until: 9, batchId: 2 },
      ]);
      expect(lost.every((l) => typeof l.at === 'number')).toBe(true);
      expect(await store.lostPruned()).toBe(0);
    } finally {
      await store.close();
    }
  });

  it(`keeps the newest ${RETAIN_HISTORY} lost records, pruned and counted in the commit write that adds one`, async () => {
    const dir = fresh();
    const kv = new RecordingKV(await LevelKV.open(join(dir, 'db')));
    const store = new CheckpointStore(kv, dir);
    // Batch i skips the first offsets of `counts[i - 1]` partitions new to it; one batch alone skips more than are kept.
    const counts = [3, 40, 1, 70, 2, RETAIN_HISTORY + 25, 5, 9];
    try {
      await store.writeMeta(meta);
      let positions: Record<string, number> = {};
      let total = 0;
      for (const [i, count] of counts.entries()) {
        const id = i + 1;
        const parts = Array.from({ length: count }, (_, j) => id * 1000 + j);
        kv.writes.length = 0;
        positions = await runBatch(store, id, parts.map((p) => range(p, 5, 5)), [], positions, parts.map((p) => range(p, 0, 5)));
        total += count;
        const kept = await store.lostRanges();
        expect(kept.length).toBe(Math.min(total, RETAIN_HISTORY));
        expect(await store.lostPruned()).toBe(total - kept.length);
        // The newest are the ones kept: this batch's (as many as fit), then the previous batches', newest first.
        expect(kept.filter((l) => l.batchId === id).length).toBe(Math.min(count, RETAIN_HISTORY));
        expect(Math.min(...kept.map((l) => l.batchId))).toBe(oldestKept(counts.slice(0, id)));
        // One write: STAGE is the other; PLAN the unsynced one.
        expect(kv.writes.map((w) => w.sync)).toEqual([false, true, true]);
        if (total > RETAIN_HISTORY) expect(kv.writes[2]!.ops).toContainEqual(expect.objectContaining({ type: 'put', key: keys.lostPruned }));
      }
    } finally {
      await store.close();
    }
    // inspect says that older history existed.
    const report = await inspectCheckpoint(dir);
    const total = counts.reduce((a, b) => a + b, 0);
    expect(report).toMatchObject({ lostPruned: total - RETAIN_HISTORY, resetsPruned: 0 });
    expect(report.lost).toHaveLength(RETAIN_HISTORY);
    expect(formatReport(report)).toContain(`lost ranges: (${total - RETAIN_HISTORY} older pruned; only the newest ${RETAIN_HISTORY} are kept)`);
  });
});

describe('two batches in flight (pipelined)', () => {
  it('load() returns both in id order; inspect shows both, the first as inFlight', async () => {
    const dir = fresh();
    const store = await openCheckpoint(dir);
    try {
      await store.writeMeta(meta);
      const positions = await runBatch(store, 1, [range(0, 0, 5)], ['a']);
      const b2 = planned(2, [range(0, 5, 8)]);
      await store.planBatch(b2);
      await store.stageBatch(b2, { out: ['b', 'c', 'd'] });
      await store.planBatch(planned(3, [range(0, 8, 9)]));
      const view = await store.load();
      expect(view.positions).toEqual(positions);
      expect(view.flight.map((b) => [b.id, b.state])).toEqual([[2, 'staged'], [3, 'planned']]);
      expect(view.inFlight).toBe(view.flight[0]);
    } finally {
      await store.close();
    }
    const report = await inspectCheckpoint(dir);
    expect(report.inFlight).toMatchObject({ id: 2, state: 'staged' });
    expect(report.alsoInFlight.map((b) => [b.id, b.state])).toEqual([[3, 'planned']]);
    const text = formatReport(report);
    expect(text).toContain('in flight: batch 2, staged');
    expect(text).toContain('in flight: batch 3, planned');
    expect(text).toContain('t/0 [8, 9)');
  });

  it("a damaged side log of the second staged batch is found at open, as the first's is (run's and inspect's damage check)", async () => {
    const dir = fresh();
    const store = await openCheckpoint(dir);
    try {
      await store.writeMeta(meta);
      await runBatch(store, 1, [range(0, 0, 5)], ['a']);
      for (const [id, r] of [[2, range(0, 5, 8)], [3, range(0, 8, 9)]] as const) {
        const b = planned(id, [r]);
        await store.planBatch(b);
        await store.stageBatch(b, { out: [`x${id}`, `y${id}`] });
      }
    } finally {
      await store.close();
    }
    const file = join(dir, sideLogFile(3));
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0x01;
    writeFileSync(file, bytes);
    await expect(openCheckpoint(dir)).rejects.toThrow(CorruptCheckpointError);
    const report = await inspectCheckpoint(dir);
    expect(report.ok).toBe(false);
    expect(report.damaged.map((d) => d.part)).toContain('staged outputs');
  });
});

/** The id of the oldest batch whose lost records are among the newest RETAIN_HISTORY. */
function oldestKept(counts: readonly number[]): number {
  let room = RETAIN_HISTORY;
  for (let i = counts.length - 1; i >= 0; i--) {
    room -= counts[i]!;
    if (room <= 0) return i + 1;
  }
  return 1;
}

describe('damaged and missing checkpoints', () => {
  it('a db/ directory without CURRENT is a CorruptCheckpointError, and the lock is not left behind', async () => {
    const dir = fresh();
    const store = await openCheckpoint(dir);
    await store.writeMeta(meta);
    await store.close();
    rmSync(join(dir, 'db', 'CURRENT'));
    await expect(openCheckpoint(dir)).rejects.toThrow(CorruptCheckpointError);
    await expect(openCheckpoint(dir)).rejects.toMatchObject({ code: 'TIDEMARK_CORRUPT_CHECKPOINT', exitCode: 7, message: expect.stringContaining('CURRENT') });
    await expect(openCheckpoint(dir, { readOnly: true })).rejects.toThrow(CorruptCheckpointError);
    expect(existsSync(join(dir, 'tidemark.lock'))).toBe(false);
  });

  it('a creation killed before its first write (empty LOCK, LOG, MANIFEST, no CURRENT, no marker) is no checkpoint yet: a run creates it again', async () => {
    const dir = fresh();
    mkdirSync(join(dir, 'db'), { recursive: true });
    for (const f of ['LOCK', 'LOG', 'MANIFEST-000001']) writeFileSync(join(dir, 'db', f), ''); // as a SIGKILL in CI's group torture left them
    await expect(openCheckpoint(dir, { readOnly: true })).rejects.toThrow(BadConfigError); // inspect: no checkpoint here
    const store = await openCheckpoint(dir);
    expect(await store.load()).toMatchObject({ lastCommitted: 0, flight: [] });
    await store.writeMeta(meta);
    await store.close();
    expect(readdirSync(join(dir, 'db'))).toContain('CURRENT');
    // With a byte in any of them it may have held a record: damage, as above.
    const other = fresh();
    mkdirSync(join(other, 'db'), { recursive: true });
    for (const f of ['LOCK', 'LOG', 'MANIFEST-000001']) writeFileSync(join(other, 'db', f), f === 'MANIFEST-000001' ? 'x' : '');
    await expect(openCheckpoint(other)).rejects.toThrow(CorruptCheckpointError);
  });

  it('a db/ that LevelDB cannot open is a CorruptCheckpointError and releases the lock', async () => {
    const dir = fresh();
    mkdirSync(join(dir, 'db'), { recursive: true });
    writeFileSync(join(dir, 'db', 'CURRENT'), 'MANIFEST-999999\n');
    await expect(openCheckpoint(dir)).rejects.toThrow(CorruptCheckpointError);
    expect(existsSync(join(dir, 'tidemark.lock'))).toBe(false);
  });

  it.each([
    ['the state record', keys.state],
    ['the meta record', keys.meta],
    ['the in-flight batch record', keys.batch(1)],
  ])('a garbled %s makes load() throw CorruptCheckpointError naming the key', async (_what, key) => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const store = new CheckpointStore(kv, dir);
    try {
      await store.writeMeta(meta);
      await store.planBatch(planned(1, [range(0, 0, 1)]));
      await kv.write([{ type: 'put', key, value: seal(key, Buffer.from('{"positions": {"t/0": 1')) }], { sync: false });
      await expect(store.load()).rejects.toThrow(CorruptCheckpointError);
      await expect(store.load()).rejects.toThrow(key);
    } finally {
      await store.close();
    }
  });

  it('a state record of the wrong shape, or unsealed in a checkpoint of this format, is a CorruptCheckpointError', async () => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const store = new CheckpointStore(kv, dir);
    try {
      await store.writeMeta(meta);
      await kv.write([{ type: 'put', key: keys.state, value: seal(keys.state, Buffer.from('{"positions": null, "lastCommitted": 3}')) }], { sync: false });
      await expect(store.load()).rejects.toThrow(/the committed state record is malformed/);
      await kv.write([{ type: 'put', key: keys.state, value: Buffer.from(JSON.stringify({ positions: { 't/0': 30 }, lastCommitted: 0 })) }], { sync: false });
      await expect(store.load()).rejects.toThrow(/record state is damaged: it has no checksum envelope/);
    } finally {
      await store.close();
    }
  });

  it('garbled or missing staged output chunks are CorruptCheckpointErrors naming the chunk', async () => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const store = new CheckpointStore(kv, dir, { chunkSize: 1 });
    try {
      await store.writeMeta(meta);
      const b = planned(1, [range(0, 0, 3)]);
      await store.planBatch(b);
      const staged = await store.stageBatch(b, { out: [1, 2, 3] });
      // Sealed, so the envelope is sound and the chunk inside is what fails to decode.
      await kv.write([{ type: 'put', key: keys.output(1, 'out', 1), value: seal(keys.output(1, 'out', 1), Buffer.from('garbage')) }], { sync: false });
      await expect(store.readStagedOutputs(staged)).rejects.toThrow(CorruptCheckpointError);
      await expect(store.readStagedOutputs(staged)).rejects.toThrow('chunk 1 of sink out in batch 1');
      await kv.write([{ type: 'del', key: keys.output(1, 'out', 2) }, { type: 'put', key: keys.output(1, 'out', 1), value: seal(keys.output(1, 'out', 1), serialize([2])) }], { sync: false });
      await expect(store.readStagedOutputs(staged)).rejects.toThrow(/chunk 2 of sink out in batch 1 is missing/);
    } finally {
      await store.close();
    }
  });

  it('garbled batch and lost records are CorruptCheckpointErrors when listed (inspect)', async () => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const store = new CheckpointStore(kv, dir);
    try {
      await store.writeMeta(meta);
      await runBatch(store, 1, [range(0, 0, 1)], [1], {}, [range(1, 0, 4)]);
      await kv.write([
        { type: 'put', key: keys.batch(1), value: Buffer.from('not json') },
        { type: 'put', key: keys.lost(1, { topic: 't', partition: 1 }), value: Buffer.from('{bad') },
      ], { sync: false });
      await expect(store.batches()).rejects.toThrow(CorruptCheckpointError);
      await expect(store.lostRanges()).rejects.toThrow(CorruptCheckpointError);
    } finally {
      await store.close();
    }
  });

  it('a committed record where the in-flight batch should be is a CorruptCheckpointError', async () => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const store = new CheckpointStore(kv, dir);
    try {
      await store.writeMeta(meta);
      await kv.write([{ type: 'put', key: keys.batch(1), value: seal(keys.batch(1), Buffer.from(JSON.stringify({ ...planned(1, []), state: 'committed' }))) }], { sync: false });
      await expect(store.load()).rejects.toThrow(/batch 1 is committed but the positions are not/);
    } finally {
      await store.close();
    }
  });

  it('a read-only open of a missing directory is a clear usage error, and creates nothing', async () => {
    const dir = join(root, 'no-such-checkpoint');
    const err = await openCheckpoint(dir, { readOnly: true }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BadConfigError);
    expect(err).toMatchObject({ exitCode: 2, message: expect.stringContaining(`There is no checkpoint in ${dir}`) });
    expect((err as Error).message).not.toMatch(/damaged/);
    expect(existsSync(dir)).toBe(false);
  });

  it('a read-only open beside a writable one (a running daemon) reads the committed state', async () => {
    const dir = fresh();
    const writer = await openCheckpoint(dir);
    try {
      await writer.writeMeta(meta);
      await runBatch(writer, 1, [range(0, 0, 10)], ['a']);
      await writer.planBatch(planned(2, [range(0, 10, 20)]));
      const reader = await openCheckpoint(dir, { readOnly: true });
      try {
        const view = await reader.load();
        expect(view).toMatchObject({ lastCommitted: 1, positions: { 't/0': 10 }, inFlight: { id: 2, state: 'planned' } });
        expect((await reader.batches()).map((b) => b.id)).toEqual([2, 1]);
      } finally {
        await reader.close();
      }
      // The writer is unaffected and goes on.
      const b2 = planned(2, [range(0, 10, 20)]);
      await writer.commitBatch(await writer.stageBatch(b2, { out: ['b'] }), { 't/0': 20 });
      expect((await writer.load()).lastCommitted).toBe(2);
    } finally {
      await writer.close();
    }
  });

  it('a write-log record LevelDB drops while opening (its LOG says Corruption) stops every open until the operator decides', async () => {
    const dir = fresh();
    let store = await openCheckpoint(dir);
    const b = planned(1, [range(0, 0, 20)]);
    try {
      await store.writeMeta(meta);
      await store.planBatch(b);
      await store.stageBatch(b, { out: Array.from({ length: 20 }, (_, i) => ({ n: i })) });
    } finally {
      await store.close();
    }
    const db = join(dir, 'db');
    const [log] = readdirSync(db).filter((f) => f.endsWith('.log'));
    const bytes = readFileSync(join(db, log!));
    bytes[bytes.length - 20]! ^= 0x10; // inside the STAGE, the last (synced) write
    writeFileSync(join(db, log!), bytes);

    const err = await openCheckpoint(dir).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect((err as CorruptCheckpointError).exitCode).toBe(7);
    expect((err as CorruptCheckpointError).message).toMatch(/LevelDB reported damage while opening it: .*Corruption: checksum mismatch/);
    expect(existsSync(join(dir, 'tidemark.lock'))).toBe(false);
    // The damaged log is kept (LevelDB deleted its own copy), and a second open refuses too.
    const kept = readdirSync(dir).filter((f) => f.startsWith('db.damaged-'));
    expect(kept).toHaveLength(1);
    expect(readFileSync(join(dir, kept[0]!, log!))).toEqual(bytes);
    expect(readdirSync(db)).not.toContain(log);
    await expect(openCheckpoint(dir)).rejects.toThrow(/LevelDB reported damage while opening it at .*delete it only to go on/);
    await expect(openCheckpoint(dir, { readOnly: true })).rejects.toThrow(CorruptCheckpointError);

    // The operator's deliberate step: go on with what LevelDB kept (here: the PLAN, not the STAGE).
    rmSync(join(dir, 'damaged.json'));
    store = await openCheckpoint(dir);
    try {
      expect((await store.load()).inFlight?.state).toBe('planned');
    } finally {
      await store.close();
    }
  });

  it('a sound open leaves no hard-linked copy behind', async () => {
    const dir = fresh();
    for (let i = 0; i < 2; i++) {
      const store = await openCheckpoint(dir);
      await store.writeMeta(meta);
      await store.close();
    }
    expect(readdirSync(dir).filter((f) => f.startsWith('db.'))).toEqual([]);
  });

  it('a checkpoint created in format 1 (before checksums) still reads its unsealed records, and writes sealed ones', async () => {
    const dir = fresh();
    const kv = await LevelKV.open(join(dir, 'db'));
    const plain = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));
    const old = planned(4, [range(0, 30, 40)]);
    await kv.write([
      { type: 'put', key: keys.meta, value: plain({ ...meta, format: 1 }) },
      { type: 'put', key: keys.state, value: plain({ positions: { 't/0': 30 }, lastCommitted: 3 }) },
      { type: 'put', key: keys.batch(3), value: plain({ ...planned(3, [range(0, 20, 30)]), state: 'committed' }) },
      { type: 'put', key: keys.batch(4), value: plain(old) },
      { type: 'put', key: keys.output(4, 'out', 0), value: serialize([{ v: 1 }]) },
    ], { sync: true });
    const store = new CheckpointStore(kv, dir);
    try {
      expect(await store.load()).toMatchObject({ meta: { format: 1 }, positions: { 't/0': 30 }, lastCommitted: 3, inFlight: old });
      expect(await store.readStagedOutputs({ ...old, state: 'staged', stagedChunks: { out: 1 } })).toEqual({ out: [{ v: 1 }] });
      await store.writeMeta({ ...meta, format: 1, fingerprint: 'f2' }); // a code change keeps the format
      expect((await store.batches()).map((r) => r.id)).toEqual([4, 3]);
      expect((await kv.get(keys.meta))![0]).toBe(SEALED_TAG);
    } finally {
      await store.close();
    }
  });
});

/** Records each write's sync flag and what it wrote, around a real LevelKV. */
class RecordingKV implements KV {
  readonly writes: Array<{ ops: readonly KVOp[]; sync: boolean }> = [];
  constructor(private readonly inner: KV) {}
  get(key: string): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }
  async write(ops: readonly KVOp[], options: { sync: boolean }): Promise<void> {
    this.writes.push({ ops, sync: options.sync });
    await this.inner.write(ops, options);
  }
  entries(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]> {
    return this.inner.entries(range);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('the durability rule', () => {
  it('plan is not synced, stage and commit are synced (a later sync does not cover an earlier write: google/leveldb#193); each is one atomic write', async () => {
    const dir = fresh();
    const kv = new RecordingKV(await LevelKV.open(join(dir, 'db')));
    const store = new CheckpointStore(kv, dir, { chunkSize: 2, retainBatches: 1 });
    try {
      await store.writeMeta(meta);
      const b1 = planned(1, [range(0, 0, 4)]);
      kv.writes.length = 0;
      await store.planBatch(b1);
      const staged = await store.stageBatch(b1, { out: [1, 2, 3] });
      await store.commitBatch(staged, { 't/0': 4 });
      expect(kv.writes.map((w) => w.sync)).toEqual([false, true, true]);

      const [plan, stage, commit] = kv.writes;
      expect(plan!.ops.map((o) => `${o.type} ${o.key}`)).toEqual([`put ${keys.batch(1)}`]);
      // Outputs and the STAGED record in the same write: no delivery from a half-staged batch.
      expect(stage!.ops.map((o) => `${o.type} ${o.key}`).sort()).toEqual([
        `put ${keys.batch(1)}`, `put ${keys.output(1, 'out', 0)}`, `put ${keys.output(1, 'out', 1)}`,
      ].sort());
      // COMMITTED, the positions and the deletion of staged outputs in the same write.
      expect(commit!.ops.map((o) => `${o.type} ${o.key}`).sort()).toEqual([
        `put ${keys.batch(1)}`, `put ${keys.state}`, `del ${keys.output(1, 'out', 0)}`, `del ${keys.output(1, 'out', 1)}`,
      ].sort());

      // Batch 2 prunes batch 1 (retainBatches 1) in its commit write.
      kv.writes.length = 0;
      const b2 = planned(2, [range(0, 4, 5)]);
      await store.planBatch(b2);
      await store.commitBatch(await store.stageBatch(b2, { out: [] }), { 't/0': 5 });
      expect(kv.writes.map((w) => w.sync)).toEqual([false, true, true]);
      expect(kv.writes[2]!.ops).toContainEqual({ type: 'del', key: keys.batch(1) });
    } finally {
      await store.close();
    }
  });

  it('the meta record is synced (a reader never sees batches without it)', async () => {
    const dir = fresh();
    const kv = new RecordingKV(await LevelKV.open(join(dir, 'db')));
    const store = new CheckpointStore(kv, dir);
    try {
      await store.writeMeta(meta);
      expect(kv.writes.map((w) => w.sync)).toEqual([true]);
    } finally {
      await store.close();
    }
  });
});
