// The key-value surface the checkpoint store needs, and its LevelDB implementation.
// Tests wrap the same surface with a store that forgets unsynced writes (power loss).
import { Level } from 'level';

export type KVOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: string };

export interface KV {
  get(key: string): Promise<Uint8Array | undefined>;
  /** One atomic write. `sync: true` makes it, and every write before it, durable. */
  write(ops: readonly KVOp[], options: { sync: boolean }): Promise<void>;
  /** Entries with `gte <= key < lt`, in key order. */
  entries(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]>;
  close(): Promise<void>;
}

export class LevelKV implements KV {
  private constructor(private readonly db: Level<string, Uint8Array>) {}

  static async open(dir: string, options: { readOnly?: boolean } = {}): Promise<LevelKV> {
    const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view', createIfMissing: !options.readOnly });
    await db.open({ passive: false });
    return new LevelKV(db);
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
  }
}
