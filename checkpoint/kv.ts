// The key-value surface the checkpoint store needs, and its LevelDB implementation.
// Tests wrap the same surface with a store that forgets unsynced writes (power loss).
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Level } from 'level';
import { describeCause } from './errors';

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
  close(): Promise<void>;
}

export class LevelKV implements KV {
  private constructor(private readonly db: Level<string, Uint8Array>, private readonly snapshotDir?: string) {}

  static async open(dir: string, options: { readOnly?: boolean } = {}): Promise<LevelKV> {
    const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view', createIfMissing: !options.readOnly });
    try {
      await db.open({ passive: false });
    } catch (err) {
      // LevelDB has no read-only mode: its LOCK is held by the running daemon. Read a copy.
      if (!options.readOnly || (err as { cause?: { code?: string } }).cause?.code !== 'LEVEL_LOCKED') throw err;
      return LevelKV.openCopy(dir);
    }
    return new LevelKV(db);
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
        return new LevelKV(db, copy);
      } catch (err) {
        await rm(copy, { recursive: true, force: true });
        if (attempt >= attempts) throw new Error(describeCause(err).split(copy).join(dir), { cause: err });
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

  async close(): Promise<void> {
    await this.db.close();
    if (this.snapshotDir) await rm(this.snapshotDir, { recursive: true, force: true });
  }
}
