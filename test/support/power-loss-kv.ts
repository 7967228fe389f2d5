// A KV that models the page cache: every write is visible at once (a process kill
// keeps it, the OS has it), but only a synced write makes it — and every write
// before it — durable. `powerLoss()` forgets whatever was not synced.
import type { KV, KVOp } from '../../checkpoint/kv';

export class PowerLossKV implements KV {
  private current = new Map<string, Uint8Array>();
  private durable = new Map<string, Uint8Array>();
  /** Every write, in order, with its sync flag (for the durability assertions). */
  readonly log: Array<{ ops: readonly KVOp[]; sync: boolean }> = [];

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.current.get(key);
  }

  async write(ops: readonly KVOp[], options: { sync: boolean }): Promise<void> {
    for (const op of ops) {
      if (op.type === 'put') this.current.set(op.key, op.value);
      else this.current.delete(op.key);
    }
    this.log.push({ ops, sync: options.sync });
    if (options.sync) this.durable = new Map(this.current);
  }

  async *entries(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]> {
    const keys = [...this.current.keys()].filter((k) => k >= range.gte && k < range.lt).sort();
    for (const k of keys) yield [k, this.current.get(k)!];
  }

  async close(): Promise<void> {}

  /** The machine lost power: unsynced writes are gone. */
  powerLoss(): void {
    this.current = new Map(this.durable);
  }
}
