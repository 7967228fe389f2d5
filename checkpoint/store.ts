// The checkpoint: one atomic write per state change of a batch.
//
//   planBatch   PLANNED{id, ranges}                      unsynced
//   stageBatch  STAGED{id, ranges} + outputs, one batch   synced
//   commitBatch COMMITTED{id}, positions := untils,        synced
//               staged outputs and old batches deleted
//
// The STAGE is synced because the delivery depends on it; the COMMIT because the next
// batch's STAGE does not make it durable: LevelDB syncs only its current log file and
// never the one it closes at a memtable switch (google/leveldb#193), so an unsynced COMMIT
// could be lost while the next STAGE survived — two batches in flight. Only the PLAN is
// unsynced: losing it loses nothing (the STAGE record repeats its ranges, and nothing
// irreversible happens before the STAGE). See docs/protocol.md.
//
// Each of the three asserts, before it writes, that the batch continues the committed
// state and the batches in flight before it (checkpoint/invariants.ts): a bug upstream
// stops here instead of becoming a gap.
//
// Pipelined batches (DESIGN.md "Pipelining") write concurrently: batch N+1's STAGE may be
// issued while N's COMMIT is. Both are synced LevelDB writes, and LevelDB's writer queue
// appends the writes waiting behind one in progress to a single log write and fsync (its
// group commit, DBImpl::BuildBatchGroup): COMMIT N and STAGE N+1 share one sync when they
// meet, each still atomic. The keys of the two never overlap.
import { chunk, decodeJSON, decodeOutputs, encodeJSON, ENVELOPE_BYTES, seal, sealedOutputs, unseal } from './codec';
import { assertUndamaged, checkpointPlace, MARKER } from './damage';
import { BadConfigError, causes, CheckpointLockedError, CheckpointWriteError, CorruptCheckpointError, describeCause, isTidemarkError } from './errors';
import { keys } from './keys';
import { existsSync, readFileSync } from 'node:fs';
import { link, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './fs-atomic';
import { isSideLogRef, SideLog, type SealedChunk } from './side-log';
import { afterFlight, assertCommit, assertContinues, type Committed } from './invariants';
import { LevelDamageError, LevelKV, type KV, type KVOp } from './kv';
import { acquireLock, type CheckpointLock } from './lock';
import {
  isWholeNumber, MAX_IN_FLIGHT, RETAIN_HISTORY, type BatchRecord, type CheckpointMeta, type CheckpointView, type DiscardedBy, type GroupOwnership, type LostRange, type OffsetMap, type Range,
} from './model';

/**
 * The on-disk format this build writes and the newest it reads. 2 (2026-11-30): every
 * value is sealed with a checksum (codec.ts); a checkpoint created in format 1 keeps
 * format 1 in its meta, and its unsealed records are still read.
 */
export const FORMAT_VERSION = 2;
/** The first format whose records are all sealed. */
const SEALED_FORMAT = 2;

/** Errors of a directory that cannot be written (a read-only mount, no permission). */
const UNWRITABLE = new Set(['EROFS', 'EACCES', 'EPERM']);
/**
 * Written when LevelDB reports damage while opening: by then it has dropped what it could
 * not read and deleted the damaged write log, so the next open would look sound. Every
 * open refuses while this file exists.
 */
const DAMAGE = 'damaged.json';
/** Staged bytes deleted by commits after which their key range is compacted (reclaimStaged). */
const COMPACT_AFTER_BYTES = 16 * 1024 * 1024;
/** Hard links to the database's files, taken before each writable open (see linkFiles). */
const BEFORE_OPEN = 'db.before-open';

export interface StoreOptions {
  /** Committed batch records kept for `inspect` (default 100). */
  readonly retainBatches?: number;
  /** Staged outputs per stored chunk (default 1024). */
  readonly chunkSize?: number;
  /** Called before every write; throws when this process no longer owns the checkpoint. */
  readonly assertWritable?: () => void;
  /** Called after the meta record is durable (openCheckpoint marks the directory as holding a checkpoint). */
  readonly onMetaWritten?: () => Promise<void>;
  /** Where staged outputs are written (openCheckpoint: the checkpoint's directory); without one they are staged in LevelDB. */
  readonly sideLog?: SideLog;
}

export class CheckpointStore {
  private readonly retain: number;
  private readonly chunkSize: number;
  private readonly assertWritable: () => void;
  private readonly onMetaWritten: (() => Promise<void>) | undefined;
  private readonly sideLog: SideLog | undefined;
  /** The committed state as last loaded or written: what the next batch must continue. */
  private committed: Committed | undefined;
  /** The batches in flight as last loaded or written (planned or staged), in id order. */
  private flight: BatchRecord[] = [];
  /** Whether unsealed values are read (a format-1 checkpoint); known once meta is read. */
  private plain: boolean | undefined;
  /** Bytes of staged outputs that commits deleted since the last compaction (reclaimStaged). */
  private deletedStaged = 0;
  /** Whether a commit of this run pruned the batch records an earlier run left beyond `retain` (pruneBatches). */
  private prunedOlder = false;

  constructor(private readonly kv: KV, readonly dir: string, options: StoreOptions = {}) {
    this.retain = Math.max(1, options.retainBatches ?? 100);
    this.chunkSize = Math.max(1, options.chunkSize ?? 1024);
    this.assertWritable = options.assertWritable ?? (() => {});
    this.onMetaWritten = options.onMetaWritten;
    this.sideLog = options.sideLog;
  }

  /** A read LevelDB fails (bad table, checksum mismatch) means damage, reported as such. */
  private async getSealed(key: string): Promise<Uint8Array | undefined> {
    try {
      return await this.kv.get(key);
    } catch (err) {
      throw new CorruptCheckpointError(this.dir, `reading ${key} failed: ${describeCause(err)}`, { cause: err });
    }
  }

  /** A value's payload, its envelope checked. */
  private async get(key: string): Promise<Uint8Array | undefined> {
    const stored = await this.getSealed(key);
    return stored === undefined ? undefined : this.unseal(key, stored, await this.plainAllowed());
  }

  private unseal(key: string, stored: Uint8Array, plainAllowed: boolean): Uint8Array {
    try {
      return unseal(key, stored, plainAllowed);
    } catch (err) {
      throw new CorruptCheckpointError(this.dir, `record ${key} is damaged: ${describeCause(err)}`, { cause: err });
    }
  }

  /**
   * A format-1 checkpoint (its meta says so) was written before the envelope: its values
   * may be unsealed. A meta that cannot be read here is reported by the read of meta itself.
   */
  private async plainAllowed(): Promise<boolean> {
    if (this.plain === undefined) {
      const stored = await this.getSealed(keys.meta);
      let format: unknown;
      try {
        format = stored && decodeJSON<Partial<CheckpointMeta>>(unseal(keys.meta, stored, true)).format;
      } catch {
        format = undefined;
      }
      this.plain = typeof format === 'number' && format < SEALED_FORMAT;
    }
    return this.plain;
  }

  private async *scan(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]> {
    const plain = await this.plainAllowed();
    try {
      for await (const [key, stored] of this.kv.entries(range)) yield [key, this.unseal(key, stored, plain)];
    } catch (err) {
      if (err instanceof CorruptCheckpointError) throw err;
      throw new CorruptCheckpointError(this.dir, `reading ${range.gte}… failed: ${describeCause(err)}`, { cause: err });
    }
  }

  private async read<T>(key: string): Promise<T | undefined> {
    const bytes = await this.get(key);
    if (bytes === undefined) return undefined;
    try {
      return decodeJSON<T>(bytes);
    } catch (err) {
      throw new CorruptCheckpointError(this.dir, `record ${key} cannot be decoded`, { cause: err });
    }
  }

  /** Removes side log files of committed batches: a crash between a COMMIT and the removal of its file leaves one. */
  async removeCommittedSideLogs(): Promise<void> {
    await this.sideLog?.removeCommitted((await this.committedState()).lastCommitted);
  }

  /** Throws LockCompromisedError when this process no longer owns the checkpoint: the engine asks before every sink write and when it wakes from idling. */
  assertHeld(): void {
    this.assertWritable();
  }

  /** `ops` are sealed here; `sealed` are puts whose values are in their envelope already (sealedOutputs). */
  private async write(ops: KVOp[], sync: boolean, sealed: readonly KVOp[] = []): Promise<void> {
    this.assertWritable();
    if (ops.some((op) => op.key === keys.meta)) this.plain = undefined;
    const all = [...sealed, ...ops.map((op): KVOp => (op.type === 'put' ? { ...op, value: seal(op.key, op.value) } : op))];
    try {
      await this.kv.write(all, { sync });
    } catch (err) {
      throw new CheckpointWriteError(this.dir, err);
    }
  }

  /**
   * Everything recovery needs: meta, committed positions, the batches in flight — those
   * recorded from lastCommitted + 1 on, up to the first id without a record. A record past
   * a missing one is a PLAN whose predecessor's unsynced PLAN a power loss dropped (nothing
   * depended on either); the next plan of that id overwrites it.
   */
  async load(): Promise<CheckpointView> {
    const meta = await this.read<CheckpointMeta>(keys.meta);
    const state = await this.readState();
    const flight: BatchRecord[] = [];
    for (let id = state.lastCommitted + 1; flight.length < MAX_IN_FLIGHT; id++) {
      const b = await this.read<BatchRecord>(keys.batch(id));
      if (!b) break;
      if (b.state === 'committed') throw new CorruptCheckpointError(this.dir, `batch ${b.id} is committed but the positions are not`);
      flight.push(b);
    }
    if (meta === undefined && (state.lastCommitted > 0 || flight.length > 0)) {
      throw new CorruptCheckpointError(this.dir, 'the meta record is missing');
    }
    this.flight = [...flight];
    return { meta, positions: state.positions, lastCommitted: state.lastCommitted, inFlight: flight[0], flight };
  }

  /** What batch `id` must continue: the committed state moved over the batches in flight before it. */
  private async baseOf(id: number): Promise<Committed> {
    if (this.committed === undefined) await this.readState();
    // Read together, with no await between: a COMMIT of the batch before may land meanwhile.
    return afterFlight(this.committed!, this.flight.filter((b) => b.id < id));
  }

  /** Records `batch` as the one in flight with its id (a new PLAN, a STAGE, or gone at COMMIT). */
  private track(batch: BatchRecord | undefined, id: number): void {
    const rest = this.flight.filter((b) => b.id !== id);
    this.flight = batch ? [...rest, batch].sort((a, b) => a.id - b.id) : rest;
  }

  private async readState(): Promise<Committed> {
    const state = (await this.read<Committed>(keys.state)) ?? { positions: {}, lastCommitted: 0 };
    if (typeof state.lastCommitted !== 'number' || typeof state.positions !== 'object' || state.positions === null) {
      throw new CorruptCheckpointError(this.dir, 'the committed state record is malformed');
    }
    this.committed = state;
    return state;
  }

  private async committedState(): Promise<Committed> {
    return this.committed ?? this.readState();
  }

  /** The meta record alone (inspect reports it even when the rest is damaged). */
  async readMeta(): Promise<CheckpointMeta | undefined> {
    return this.read<CheckpointMeta>(keys.meta);
  }

  async writeMeta(meta: CheckpointMeta): Promise<void> {
    // Synced: a reader must never see batches without the meta that says whose they are.
    await this.write([{ type: 'put', key: keys.meta, value: encodeJSON(meta) }], true);
    await this.onMetaWritten?.();
  }

  async planBatch(batch: BatchRecord): Promise<void> {
    assertContinues(batch, batch.lost ?? [], await this.baseOf(batch.id), this.dir);
    await this.write([{ type: 'put', key: keys.batch(batch.id), value: encodeJSON(batch) }], false);
    this.track(batch, batch.id);
  }

  /** Outputs per sink; `undefined` when the job recomputes on replay instead of staging. */
  async stageBatch(batch: BatchRecord, outputs: Readonly<Record<string, readonly unknown[]>> | undefined): Promise<BatchRecord> {
    assertContinues(batch, batch.lost ?? [], await this.baseOf(batch.id), this.dir);
    let sealed: KVOp[] = [];
    let refs: KVOp[] = [];
    let stagedChunks: Record<string, number> | undefined;
    let stagedBytes = 0;
    if (outputs) {
      const counts: Record<string, number> = stagedChunks = {};
      const chunkSize = this.chunkSize;
      // Encoded as they are taken: the side log writes each chunk out before the next is encoded.
      const sealedChunks = function* (): Generator<SealedChunk> {
        for (const [sink, items] of Object.entries(outputs)) {
          const chunks = chunk(items, chunkSize);
          counts[sink] = chunks.length;
          for (const [i, c] of chunks.entries()) {
            const key = keys.output(batch.id, sink, i);
            const value = sealedOutputs(key, c, i * chunkSize);
            stagedBytes += value.byteLength - ENVELOPE_BYTES;
            yield { key, value };
          }
        }
      };
      if (this.sideLog) {
        this.assertWritable(); // the side log is a write to the checkpoint too
        refs = await this.sideLog.append(batch.id, sealedChunks());
      } else sealed = Array.from(sealedChunks(), ({ key, value }): KVOp => ({ type: 'put', key, value }));
    }
    const staged: BatchRecord = { ...batch, state: 'staged', stagedAt: Date.now(), ...(stagedChunks ? { stagedChunks, stagedBytes } : {}) };
    await this.write([...refs, { type: 'put', key: keys.batch(batch.id), value: encodeJSON(staged) }], true, sealed);
    this.track(staged, batch.id);
    return staged;
  }

  async readStagedOutputs(batch: BatchRecord): Promise<Record<string, unknown[]>> {
    const outputs: Record<string, unknown[]> = {};
    for (const [sink, count] of Object.entries(batch.stagedChunks ?? {})) {
      const items: unknown[] = [];
      for (let i = 0; i < count; i++) {
        const key = keys.output(batch.id, sink, i);
        const stored = await this.get(key);
        if (stored === undefined) throw new CorruptCheckpointError(this.dir, `staged output chunk ${i} of sink ${sink} in batch ${batch.id} is missing`);
        // A chunk is in the side log, or in LevelDB itself (staged by a build before the side log, or by a store without one).
        const bytes = isSideLogRef(stored) ? await (this.sideLog ?? new SideLog(this.dir)).read(key, stored) : stored;
        try {
          for (const item of decodeOutputs(bytes)) items.push(item);
        } catch (err) {
          throw new CorruptCheckpointError(this.dir, `staged output chunk ${i} of sink ${sink} in batch ${batch.id} cannot be decoded`, { cause: err });
        }
      }
      outputs[sink] = items;
    }
    return outputs;
  }

  /** Marks the batch committed and moves the positions to its untils, in one write. */
  async commitBatch(batch: BatchRecord, positions: OffsetMap, lost: readonly Range[] = []): Promise<BatchRecord> {
    assertCommit(batch, lost, await this.committedState(), positions, this.dir);
    const committedAt = Date.now();
    const committed: BatchRecord = { ...batch, state: 'committed', committedAt };
    const state: Committed = { positions, lastCommitted: batch.id };
    const ops: KVOp[] = [
      { type: 'put', key: keys.batch(batch.id), value: encodeJSON(committed) },
      { type: 'put', key: keys.state, value: encodeJSON(state) },
    ];
    for (const [sink, count] of Object.entries(batch.stagedChunks ?? {})) {
      for (let i = 0; i < count; i++) ops.push({ type: 'del', key: keys.output(batch.id, sink, i) });
    }
    if (lost.length > 0) ops.push(...await this.recordLost(batch.id, lost, committedAt));
    ops.push(...await this.pruneBatches(batch.id));
    await this.write(ops, true);
    this.prunedOlder = true;
    // Set before anything else is awaited: a pipelined batch's STAGE checks against it meanwhile.
    this.committed = state;
    this.track(undefined, batch.id);
    await this.sideLog?.remove(batch.id);
    await this.reclaimStaged(this.sideLog ? 0 : batch.stagedBytes ?? 0);
    return committed;
  }

  /**
   * Compacts the staged outputs' range once COMMITs have deleted COMPACT_AFTER_BYTES of them.
   * LevelDB compacts by file counts per level, not by deleted bytes: after 6 batches of 40,000
   * × 1 KB a checkpoint with nothing in flight held 46.4 MiB of deleted outputs, 0.0 MiB after a
   * CompactRange of 212 ms (bench/checkpoint-size.ts, 2026-11-30; 28.7 MiB was seen in use).
   */
  private async reclaimStaged(deletedBytes: number): Promise<void> {
    this.deletedStaged += deletedBytes;
    if (this.deletedStaged < COMPACT_AFTER_BYTES || !this.kv.compact) return;
    this.deletedStaged = 0;
    await this.kv.compact(keys.outputs);
  }

  /**
   * The deletes that keep the newest `retain` batch records once `id` commits. Each commit
   * drops the one record that falls out; the first commit of a run drops every older one,
   * since a run with a lower retainBatches than the last left them all behind (before
   * 2026-11-30 they stayed for good).
   */
  private async pruneBatches(id: number): Promise<KVOp[]> {
    const keep = id - this.retain + 1; // the oldest id kept
    if (keep <= 1) return [];
    if (this.prunedOlder) return [{ type: 'del', key: keys.batch(keep - 1) }];
    const ops: KVOp[] = [];
    for await (const [key] of this.kv.entries({ gte: keys.batches.gte, lt: keys.batch(keep) })) ops.push({ type: 'del', key });
    return ops;
  }

  /**
   * The writes that record `lost` and keep only the newest RETAIN_HISTORY lost records,
   * counting what they drop: part of the COMMIT's one atomic write.
   */
  private async recordLost(batchId: number, lost: readonly Range[], at: number): Promise<KVOp[]> {
    const kept: string[] = [];
    for await (const [key] of this.scan(keys.lostAll)) kept.push(key);
    const drop = Math.max(0, kept.length + lost.length - RETAIN_HISTORY);
    const ops: KVOp[] = kept.slice(0, drop).map((key) => ({ type: 'del', key }));
    // Keys sort by batch id: the older records go first, then this batch's first ones if it alone holds more.
    for (const r of lost.slice(Math.max(0, drop - kept.length))) {
      const record: LostRange = { ...r, batchId, at };
      ops.push({ type: 'put', key: keys.lost(batchId, r), value: encodeJSON(record) });
    }
    if (drop > 0) ops.push({ type: 'put', key: keys.lostPruned, value: encodeJSON((await this.lostPruned()) + drop) });
    return ops;
  }

  /**
   * Replaces the positions deliberately, optionally dropping the batch in flight: `tidemark
   * reset` (with the meta that records it), and group mode's takeovers and handoffs (no meta:
   * a partition's position becomes where the group says, or is forgotten when it moves away).
   */
  async resetPositions(positions: OffsetMap, lastCommitted: number, discarded: readonly BatchRecord[], meta: CheckpointMeta | undefined, discardedBy: DiscardedBy = 'reset'): Promise<void> {
    const state: Committed = { positions, lastCommitted: Math.max(lastCommitted, ...discarded.map((b) => b.id)) };
    const ops: KVOp[] = [{ type: 'put', key: keys.state, value: encodeJSON(state) }];
    if (meta) ops.push({ type: 'put', key: keys.meta, value: encodeJSON(meta) });
    for (const discard of discarded) {
      // The discarded id is skipped for good: a sink may hold its outputs already.
      ops.push({ type: 'put', key: keys.batch(discard.id), value: encodeJSON({ ...discard, state: "committed", committedAt: Date.now(), discarded: true, discardedBy } satisfies BatchRecord) });
      for (const [sink, count] of Object.entries(discard.stagedChunks ?? {})) {
        for (let i = 0; i < count; i++) ops.push({ type: 'del', key: keys.output(discard.id, sink, i) });
      }
    }
    await this.write(ops, true);
    this.committed = state;
    this.flight = this.flight.filter((b) => b.id > state.lastCommitted);
    for (const discard of discarded) await this.sideLog?.remove(discard.id);
    if (meta) await this.onMetaWritten?.(); // a reset may be what started the checkpoint
  }

  /**
   * Moves the last committed id to `id` without a batch: ids up to it were used before a
   * reset of a rolled-back checkpoint (recovery/crosscheck.ts), and sinks keyed by batch id
   * hold them.
   */
  async skipBatchIds(id: number): Promise<void> {
    const state = await this.committedState();
    if (id <= state.lastCommitted) return;
    const next: Committed = { positions: state.positions, lastCommitted: id };
    await this.write([{ type: 'put', key: keys.state, value: encodeJSON(next) }], true);
    this.committed = next;
  }

  /** Group mode: records the last assignment (unsynced: it only informs inspect; recovery asks the group). */
  async writeOwnership(ownership: GroupOwnership): Promise<void> {
    await this.write([{ type: 'put', key: keys.ownership, value: encodeJSON(ownership) }], false);
  }

  async readOwnership(): Promise<GroupOwnership | undefined> {
    return this.read<GroupOwnership>(keys.ownership);
  }

  /** Batch records kept by retention, newest first. */
  async batches(limit = Infinity): Promise<BatchRecord[]> {
    return (await this.decodeAll<BatchRecord>(keys.batches)).reverse().slice(0, limit);
  }

  async lostRanges(): Promise<LostRange[]> {
    return this.decodeAll<LostRange>(keys.lostAll);
  }

  /** Every JSON record in `range`, in key order; one that does not decode is damage. */
  private async decodeAll<T>(range: { gte: string; lt: string }): Promise<T[]> {
    const all: T[] = [];
    for await (const [key, value] of this.scan(range)) {
      try {
        all.push(decodeJSON<T>(value));
      } catch (err) {
        throw new CorruptCheckpointError(this.dir, `record ${key} cannot be decoded`, { cause: err });
      }
    }
    return all;
  }

  /** How many lost records were pruned to keep the newest RETAIN_HISTORY. */
  async lostPruned(): Promise<number> {
    const n = await this.read<unknown>(keys.lostPruned);
    if (n !== undefined && !isWholeNumber(n)) throw new CorruptCheckpointError(this.dir, `record ${keys.lostPruned} is not a count`);
    return n ?? 0;
  }

  /**
   * For a reader of a copy (inspect beside a running daemon): holds the side logs of the
   * staged batches in flight open, so that the daemon committing one and removing its file
   * meanwhile does not look like damage. False when a file is gone already: the copy is
   * older than that commit. Damage is left for the examination to report.
   */
  async holdStagedSideLog(): Promise<boolean> {
    try {
      for (const b of (await this.load()).flight) {
        const sink = b.state === 'staged' ? Object.keys(b.stagedChunks ?? {})[0] : undefined;
        if (sink === undefined || !this.sideLog) continue;
        const first = await this.get(keys.output(b.id, sink, 0));
        if (first !== undefined && isSideLogRef(first) && !await this.sideLog.hold(b.id)) return false;
      }
      return true;
    } catch {
      return true;
    }
  }

  async close(): Promise<void> {
    await this.kv.close();
    await this.sideLog?.release();
  }
}

/**
 * Opens the checkpoint in `dir` (LevelDB in `dir/db`). Writable opens take the lock
 * first and hold it until `close()`; read-only opens (inspect) never take it.
 */
export async function openCheckpoint(
  dir: string,
  options: StoreOptions & { readOnly?: boolean; onLockCompromised?: (err: Error) => void } = {},
): Promise<CheckpointStore> {
  const dbDir = join(dir, 'db');
  const exists = existsSync(dbDir);
  // A wrong path, or a checkpoint whose database is gone, is told before the lock creates anything.
  if (options.readOnly) requireCheckpoint(dir);
  else checkpointPlace(dir);
  let lock: CheckpointLock | undefined;
  if (!options.readOnly) {
    try {
      lock = await acquireLock(dir, options.onLockCompromised);
    } catch (err) {
      // The lock is the first write: a read-only or unwritable directory fails here, and is not a bug.
      if (isTidemarkError(err) || !UNWRITABLE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      throw new CheckpointWriteError(dir, err);
    }
  }
  let kv: LevelKV;
  try {
    refuseRecordedDamage(dir);
    const before = lock && exists ? await linkFiles(dbDir, join(dir, BEFORE_OPEN)) : undefined;
    try {
      kv = await LevelKV.open(dbDir, { readOnly: options.readOnly === true });
    } catch (err) {
      if (err instanceof LevelDamageError && err.opened === dbDir) await recordDamage(dir, err, before);
      throw err;
    }
    if (before) await rm(before, { recursive: true, force: true });
  } catch (err) {
    await lock?.release();
    if (err instanceof CorruptCheckpointError) throw err;
    // Opening replays LevelDB's log into a table file: a full disk fails here, and is not damage.
    if (/no space left|read-only file system/i.test(describeCause(err))) throw new CheckpointWriteError(dir, err);
    // LevelDB's own LOCK held by another process (one that opened db/ without tidemark's
    // lock, or a LevelDB tool): the checkpoint is busy, not damaged.
    if (isLevelDbLockRefusal(err)) throw new CheckpointLockedError(dir, `LevelDB's own lock, ${join(dbDir, 'LOCK')}, is held: ${describeCause(err)}`);
    throw new CorruptCheckpointError(dir, `LevelDB cannot open it: ${describeCause(err)}`, { cause: err });
  }
  const marker = join(dir, MARKER);
  const store = new CheckpointStore(kv, dir, {
    ...options,
    sideLog: new SideLog(dir),
    assertWritable: () => lock?.assertHeld(),
    onMetaWritten: async () => {
      if (!existsSync(marker)) await writeFileAtomic(marker, `${JSON.stringify({ format: FORMAT_VERSION, createdAt: Date.now() })}\n`);
    },
  });
  try {
    // Writers read every record first (checkpoint/damage.ts): inspect, run and reset agree.
    if (!options.readOnly) {
      await assertUndamaged(store);
      await store.removeCommittedSideLogs();
    }
  } catch (err) {
    await kv.close();
    await lock?.release();
    throw err;
  }
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await lock?.release();
  };
  return store;
}

/** classic-level's refusal of a LevelDB directory another process (or this one) has open: "IO error: lock …/LOCK: Resource temporarily unavailable" or "… already held by process". */
function isLevelDbLockRefusal(err: unknown): boolean {
  return /\block\b[^:]*\bLOCK\b.*(temporarily unavailable|already held|EAGAIN|EWOULDBLOCK)/i.test(describeCause(err))
    || causes(err).some((e) => (e as { code?: unknown }).code === 'LEVEL_LOCKED');
}

/** The one check that `dir` holds a checkpoint at all: a wrong path is a usage error, a lost database is damage (checkpointPlace). */
export function requireCheckpoint(dir: string): void {
  if (checkpointPlace(dir) === 'none') throw new BadConfigError(`There is no checkpoint in ${dir} (no ${join(dir, 'db')}): check the path.`);
}

/**
 * A store over a copy of the checkpoint's files, for readers that must not write a byte
 * and must not take the lock (`inspect`): it works beside a running daemon, and close()
 * deletes the copy. A copy taken beside a busy daemon may be torn: `attempts` copies.
 */
export async function openCheckpointCopy(dir: string, attempts = 1): Promise<CheckpointStore> {
  requireCheckpoint(dir);
  refuseRecordedDamage(dir);
  for (let attempt = 1; ; attempt++) {
    let store: CheckpointStore;
    try {
      store = new CheckpointStore(await LevelKV.openCopy(join(dir, 'db'), attempts), dir, { sideLog: new SideLog(dir) });
    } catch (err) {
      if (err instanceof LevelDamageError) throw new CorruptCheckpointError(dir, damageDetail(dir, err.lines, null), { cause: err });
      // LevelKV.openCopy's message already holds the causes, with the copy's path replaced by the original's.
      throw new CorruptCheckpointError(dir, err instanceof Error ? err.message : String(err), { cause: err });
    }
    if (await store.holdStagedSideLog() || attempt >= attempts) return store;
    await store.close(); // its batch in flight was committed while it was copied: copy again
  }
}

/** Throws while a damage report of an earlier open stands. */
function refuseRecordedDamage(dir: string): void {
  const file = join(dir, DAMAGE);
  if (!existsSync(file)) return;
  let report: { at?: string; lines?: string[]; kept?: string | null } = {};
  try {
    report = JSON.parse(readFileSync(file, 'utf8')) as typeof report;
  } catch { /* the file's presence is the report */ }
  throw new CorruptCheckpointError(dir, damageDetail(dir, report.lines ?? ['(see the file)'], report.kept ?? null, report.at));
}

function damageDetail(dir: string, lines: readonly string[], kept: string | null, at?: string): string {
  return `LevelDB reported damage while opening it${at ? ` at ${at}` : ''}: ${lines.join('; ')}. ` +
    `It dropped the records it could not read, so what it holds now may be older than what was written` +
    `${kept ? `; its files as they were before that open are kept in ${kept}` : ''}. ` +
    `Recorded in ${join(dir, DAMAGE)}: every run refuses while it exists; delete it only to go on with what LevelDB kept`;
}

/**
 * Hard links to the database's files before LevelDB opens them: opening replays the write
 * log into a table and deletes the log, and when LevelDB finds damage there, the log is the
 * evidence (and may still hold the synced records it dropped). Links cost no copy, and
 * LevelDB never rewrites a file in place. Undefined where links are not possible.
 */
async function linkFiles(dbDir: string, to: string): Promise<string | undefined> {
  try {
    await rm(to, { recursive: true, force: true });
    await mkdir(to);
    for (const name of await readdir(dbDir)) if (name !== 'LOCK') await link(join(dbDir, name), join(to, name));
    return to;
  } catch {
    await rm(to, { recursive: true, force: true }).catch(() => {});
    return undefined;
  }
}

async function recordDamage(dir: string, err: LevelDamageError, before: string | undefined): Promise<never> {
  const at = new Date().toISOString();
  let kept: string | null = null;
  if (before) {
    kept = join(dir, `db.damaged-${at.replace(/[:.]/g, '-')}`);
    await rename(before, kept).catch(() => { kept = null; });
  }
  await writeFileAtomic(join(dir, DAMAGE), `${JSON.stringify({ at, lines: err.lines, kept }, null, 2)}\n`);
  throw new CorruptCheckpointError(dir, damageDetail(dir, err.lines, kept), { cause: err });
}

/** Bytes the checkpoint's files take on disk (the LevelDB directory and the lock files beside it). */
export async function sizeOnDisk(dir: string): Promise<number> {
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch {
      return; // gone meanwhile (compaction), or not there at all
    }
    for (const e of entries) {
      const child = join(path, e.name);
      if (e.isDirectory()) await walk(child);
      else total += await stat(child).then((st) => st.size, () => 0);
    }
  };
  await walk(dir);
  return total;
}
