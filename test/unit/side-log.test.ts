// The side log (checkpoint/side-log.ts) under a real checkpoint: staged chunks go to
// staged-<batch>.log, written whole before the STAGE that references them; they read back
// exactly, or a flipped bit, a cut or a missing file is a CorruptCheckpointError (exit 7);
// COMMIT removes the file and the next open removes one a crash left behind; chunks staged
// in LevelDB by a build before the side log still redeliver.
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keys } from '../../checkpoint/keys';
import { CorruptCheckpointError, ExitCode } from '../../checkpoint/errors';
import { LevelKV, type KV, type KVOp } from '../../checkpoint/kv';
import type { BatchRecord, CheckpointMeta, Range } from '../../checkpoint/model';
import { SIDE_LOG_REF_TAG, SideLog, sideLogFile } from '../../checkpoint/side-log';
import { CheckpointStore, FORMAT_VERSION, openCheckpoint, openCheckpointCopy } from '../../checkpoint/store';
import { UnstageableOutputError } from '../../checkpoint/faithful';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-side-log-');
let n = 0;
const fresh = (): string => join(root, `cp${++n}`);

const meta: CheckpointMeta = {
  format: FORMAT_VERSION, job: 'j', source: 'src', sinks: ['out'], fingerprint: 'f1',
  fingerprints: [{ fingerprint: 'f1', since: 1, note: 'first run' }], resets: [], createdAt: 1,
};
const range = (from: number, until: number): Range => ({ topic: 't', partition: 0, from, until });
const planned = (id: number, r: Range): BatchRecord => ({ id, state: 'planned', ranges: [r], fingerprint: 'f1', plannedAt: 1 });
/** Records of the column layout and of v8 (a nested record of another shape), over several chunks of 4. */
const outputs = (id: number): unknown[] => [
  ...Array.from({ length: 9 }, (_, i) => ({ v: Buffer.from(`value ${id}:${i}`), ts: i })),
  { late: id, nested: { n: 1 } },
];
const sideLogsIn = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith('staged-'));

/** A checkpoint with batch 1 committed and batch 2 staged in flight; returns its directory. */
async function stagedCheckpoint(): Promise<string> {
  const dir = fresh();
  const store = await openCheckpoint(dir, { chunkSize: 4 });
  try {
    await store.writeMeta(meta);
    await store.planBatch(planned(1, range(0, 10)));
    await store.commitBatch(await store.stageBatch(planned(1, range(0, 10)), { out: outputs(1) }), { 't/0': 10 });
    await store.planBatch(planned(2, range(10, 20)));
    await store.stageBatch(planned(2, range(10, 20)), { out: outputs(2) });
  } finally {
    await store.close();
  }
  return dir;
}

/** What a restart reads: the staged outputs of the batch in flight, or the error opening or reading. */
async function redeliver(dir: string): Promise<unknown> {
  const store = await openCheckpoint(dir, { chunkSize: 4 });
  try {
    return await store.readStagedOutputs((await store.load()).inFlight!);
  } finally {
    await store.close();
  }
}

async function damageOf(dir: string): Promise<CorruptCheckpointError> {
  const err = await redeliver(dir).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(CorruptCheckpointError);
  expect((err as CorruptCheckpointError).exitCode).toBe(ExitCode.corruptCheckpoint);
  return err as CorruptCheckpointError;
}

describe('the side log', () => {
  it('holds the chunks of the batch in flight alone; LevelDB holds references to them; they read back exactly', async () => {
    const dir = await stagedCheckpoint();
    // Batch 1's file went with its COMMIT.
    expect(sideLogsIn(dir)).toEqual([sideLogFile(2)]);
    expect(await redeliver(dir)).toEqual({ out: outputs(2) });
    const kv = await LevelKV.open(join(dir, 'db'));
    try {
      const stored: Uint8Array[] = [];
      for await (const [, value] of kv.entries(keys.outputs)) stored.push(value);
      expect(stored).toHaveLength(3);
      // Sealed references of a few dozen bytes, not chunks.
      for (const value of stored) {
        expect(value[6]).toBe(SIDE_LOG_REF_TAG);
        expect(value.length).toBeLessThan(120);
      }
    } finally {
      await kv.close();
    }
  });

  it('is complete on disk before the STAGE write that references it', async () => {
    const dir = fresh();
    const db = await LevelKV.open(join(dir, 'db'));
    const seen: number[] = [];
    // The file's size at the moment LevelDB is asked to write the STAGE record.
    const kv: KV = {
      get: (key) => db.get(key),
      entries: (r) => db.entries(r),
      close: () => db.close(),
      write: async (ops: readonly KVOp[], options) => {
        if (ops.some((op) => op.key === keys.batch(1) && op.type === 'put') && options.sync) {
          seen.push(existsSync(join(dir, sideLogFile(1))) ? statSync(join(dir, sideLogFile(1))).size : -1);
        }
        await db.write(ops, options);
      },
    };
    const store = new CheckpointStore(kv, dir, { chunkSize: 4, sideLog: new SideLog(dir) });
    try {
      await store.writeMeta(meta);
      await store.planBatch(planned(1, range(0, 10)));
      const staged = await store.stageBatch(planned(1, range(0, 10)), { out: outputs(1) });
      expect(seen).toEqual([readFileSync(join(dir, sideLogFile(1))).length]);
      expect(seen[0]).toBeGreaterThan(staged.stagedBytes!);
      await store.commitBatch(staged, { 't/0': 10 });
      expect(sideLogsIn(dir)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a flipped bit in the file is a CorruptCheckpointError naming the file and the chunk', async () => {
    const dir = await stagedCheckpoint();
    const file = join(dir, sideLogFile(2));
    const bytes = readFileSync(file);
    bytes[bytes.length - 3]! ^= 0x10;
    writeFileSync(file, bytes);
    const err = await damageOf(dir);
    expect(err.detail).toMatch(/side log staged-0000000000000002\.log at \d+ \(\d+ bytes\), staged output out!0000000000000002!out!000002 is damaged: checksum mismatch/);
  });

  it('a file cut short is a CorruptCheckpointError saying so, before anything is allocated from the reference', async () => {
    const dir = await stagedCheckpoint();
    const file = join(dir, sideLogFile(2));
    truncateSync(file, statSync(file).size - 1);
    expect((await damageOf(dir)).detail).toMatch(/side log staged-0000000000000002\.log at \d+ \(\d+ bytes\), staged output out!0000000000000002!out!000002 is cut short: the file has \d+ bytes/);
  });

  it('a missing file is a CorruptCheckpointError naming it', async () => {
    const dir = await stagedCheckpoint();
    unlinkSync(join(dir, sideLogFile(2)));
    expect((await damageOf(dir)).detail).toMatch(/side log staged-0000000000000002\.log is missing \(the COMMIT of its batch removes it: was that COMMIT lost\?\): it holds staged output out!0000000000000002!out!000000/);
  });

  it('a file of a committed batch (a crash between the COMMIT and its removal) is removed at the next open; the one in flight stays', async () => {
    const dir = await stagedCheckpoint();
    writeFileSync(join(dir, sideLogFile(1)), 'left by a crash');
    writeFileSync(join(dir, 'staged-notes.log'), 'not a side log');
    expect(await redeliver(dir)).toEqual({ out: outputs(2) });
    expect(sideLogsIn(dir).sort()).toEqual([sideLogFile(2), 'staged-notes.log']);
  });

  it('a copy (inspect beside a running daemon) holds the file of the batch in flight: the daemon\'s commit removing it meanwhile is not damage', async () => {
    const dir = await stagedCheckpoint();
    const copy = await openCheckpointCopy(dir, 5);
    try {
      unlinkSync(join(dir, sideLogFile(2))); // as the COMMIT of batch 2 does
      expect(await copy.readStagedOutputs((await copy.load()).inFlight!)).toEqual({ out: outputs(2) });
    } finally {
      await copy.close();
    }
    // Gone before the copy, with the batch still staged: damage.
    const again = await openCheckpointCopy(dir, 2);
    try {
      await expect(again.readStagedOutputs((await again.load()).inFlight!)).rejects.toThrow(/side log staged-0000000000000002\.log is missing/);
    } finally {
      await again.close();
    }
  });

  it('a second stage of the batch appends, so the first STAGE\'s references stay valid until the second is written', async () => {
    const dir = fresh();
    const store = await openCheckpoint(dir, { chunkSize: 4 });
    try {
      await store.writeMeta(meta);
      await store.planBatch(planned(1, range(0, 10)));
      const first = await store.stageBatch(planned(1, range(0, 10)), { out: outputs(1) });
      const size = statSync(join(dir, sideLogFile(1))).size;
      const second = await store.stageBatch(planned(1, range(0, 10)), { out: outputs(1), rejected: ['r'] });
      expect(statSync(join(dir, sideLogFile(1))).size).toBeGreaterThan(size);
      expect(await store.readStagedOutputs(second)).toEqual({ out: outputs(1), rejected: ['r'] });
      expect(first.stagedChunks).toEqual({ out: 3 });
    } finally {
      await store.close();
    }
  });

  it('an output the codec refuses fails the stage as a transform would, leaving the file as it was', async () => {
    const dir = await stagedCheckpoint();
    const store = await openCheckpoint(dir, { chunkSize: 4 });
    try {
      const before = readFileSync(join(dir, sideLogFile(2)));
      const bad = [...outputs(2), { f: () => 1 }];
      await expect(store.stageBatch(planned(2, range(10, 20)), { out: bad })).rejects.toBeInstanceOf(UnstageableOutputError);
      expect(readFileSync(join(dir, sideLogFile(2)))).toEqual(before);
      expect(await store.readStagedOutputs((await store.load()).inFlight!)).toEqual({ out: outputs(2) });
    } finally {
      await store.close();
    }
  });

  it('chunks staged in LevelDB (by a build before the side log) are redelivered, and their commit leaves no file', async () => {
    const dir = fresh();
    const old = new CheckpointStore(await LevelKV.open(join(dir, 'db')), dir, { chunkSize: 4 });
    try {
      await old.writeMeta(meta);
      await old.planBatch(planned(1, range(0, 10)));
      await old.stageBatch(planned(1, range(0, 10)), { out: outputs(1) });
    } finally {
      await old.close();
    }
    expect(sideLogsIn(dir)).toEqual([]);
    const store = await openCheckpoint(dir, { chunkSize: 4 });
    try {
      const inFlight = (await store.load()).inFlight!;
      expect(await store.readStagedOutputs(inFlight)).toEqual({ out: outputs(1) });
      await store.commitBatch(inFlight, { 't/0': 10 });
      expect((await store.load()).lastCommitted).toBe(1);
      expect(sideLogsIn(dir)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
