// The key-value surface the checkpoint store needs, and its LevelDB implementation.
// Tests wrap the same surface with a store that forgets unsynced writes (power loss).
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Level } from 'level';
import { describeCause } from './errors';
import { damagedTables } from './tables';

export type KVOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: string };

export interface KV {
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * One atomic write. `sync: true` makes this write durable, not the unsynced ones before
   * it: LevelDB never syncs the log file it closes at a memtable switch (google/leveldb#193).
   */
  write(ops: readonly KVOp[], options: { sync: boolean }): Promise<void>;
  /** Entries with `gte <= key < lt`, in key order. */
  entries(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]>;
  /** Compacts the keys in the range now (LevelDB's CompactRange). Optional: an in-memory KV has nothing to reclaim. */
  compact?(range: { gte: string; lt: string }): Promise<void>;
  close(): Promise<void>;
}

/**
 * LevelDB reported damage in its `LOG` while opening. It opens without paranoid checks
 * (classic-level has no option for them), so a write-log record with a bad checksum is
 * dropped, with everything after it in its block, and open succeeds: a synced STAGE came
 * back as PLANNED and was run again. The LOG line is the only trace.
 */
export class LevelDamageError extends Error {
  constructor(readonly lines: readonly string[], readonly opened: string) {
    super(`LevelDB reported damage while opening ${opened}: ${lines.join('; ')}`);
  }
}

/** The `Corruption:` lines of the LOG that LevelDB starts at every open (the previous one becomes LOG.old). */
async function damageReported(dir: string): Promise<string[]> {
  const log = await readFile(join(dir, 'LOG'), 'utf8').catch(() => '');
  // "2026/11/29-23:29:35.105029 7f97e77fe6c0 (ignoring error) …/000003.log: dropping 248 bytes; Corruption: checksum mismatch"
  return log.split('\n').filter((line) => line.includes('Corruption:')).map((line) => line.replace(/^\S+ \S+ /, ''));
}

export class LevelKV implements KV {
  private constructor(private readonly db: Level<string, Uint8Array>, private readonly snapshotDir?: string) {}

  static async open(dir: string, options: { readOnly?: boolean } = {}): Promise<LevelKV> {
    // Under tidemark's lock no one writes the tables while they are read. Readers (inspect) open
    // a copy unchecked, to list what LevelDB can still read of a damaged one.
    if (!options.readOnly) await LevelKV.refuseDamagedTables(dir);
    const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view', createIfMissing: !options.readOnly });
    try {
      await db.open({ passive: false });
    } catch (err) {
      // LevelDB has no read-only mode: its LOCK is held by the running daemon. Read a copy.
      if (!options.readOnly || (err as { cause?: { code?: string } }).cause?.code !== 'LEVEL_LOCKED') throw err;
      return LevelKV.openCopy(dir);
    }
    await LevelKV.refuseDamage(db, dir);
    return new LevelKV(db);
  }

  /** Before LevelDB opens them: its compaction would merge a damaged table, or abort the process (tables.ts). */
  private static async refuseDamagedTables(dir: string): Promise<void> {
    const damaged = await damagedTables(dir);
    if (damaged.length > 0) throw new Error(`table files fail their block checksums: ${damaged.join('; ')}`);
  }

  private static async refuseDamage(db: Level<string, Uint8Array>, dir: string): Promise<void> {
    const lines = await damageReported(dir);
    if (lines.length === 0) return;
    await db.close();
    throw new LevelDamageError(lines, dir);
  }

  /**
   * Opens a copy of the database (not its LOCK): for readers that must not write a byte
   * (opening LevelDB in place writes its LOCK, a new log and manifest, even the repair of
   * a damaged log), and for one another process has open. Files may vanish mid-copy (a
   * compaction): up to `attempts` copies. Errors name `dir`, not the copy.
   */
  static async openCopy(dir: string, attempts = 5): Promise<LevelKV> {
    for (let attempt = 1; ; attempt++) {
      const copy = await mkdtemp(join(tmpdir(), 'tidemark-inspect-'));
      try {
        await cp(dir, copy, { recursive: true, filter: (src) => basename(src) !== 'LOCK' });
        const db = new Level<string, Uint8Array>(copy, { valueEncoding: 'view', createIfMissing: false });
        await db.open({ passive: false });
        await LevelKV.refuseDamage(db, copy);
        return new LevelKV(db, copy);
      } catch (err) {
        await rm(copy, { recursive: true, force: true });
        if (attempt >= attempts) throw err instanceof LevelDamageError ? new LevelDamageError(err.lines, dir) : new Error(describeCause(err).split(copy).join(dir), { cause: err });
      }
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.db.get(key)) ?? undefined;
  }

  async write(ops: readonly KVOp[], options: { sync: boolean }): Promise<void> {
    await this.db.batch(ops.map((op) => ({ ...op })), { sync: options.sync });
  }

  async *entries(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]> {
    for await (const entry of this.db.iterator(range)) yield entry;
  }

  async compact(range: { gte: string; lt: string }): Promise<void> {
    // In Node `level` is classic-level, which has compactRange; level's browser-neutral types leave it out.
    await (this.db as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange(range.gte, range.lt);
  }

  async close(): Promise<void> {
    await this.db.close();
    if (this.snapshotDir) await rm(this.snapshotDir, { recursive: true, force: true });
  }
}
