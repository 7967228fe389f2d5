// A KV that models the page cache: every write is visible at once (a process kill keeps
// it, the OS has it), but only a synced write is sure to survive a power loss. An
// unsynced write may survive or not, whatever was synced after it: LevelDB syncs only its
// current log file, and a log file closed at a memtable switch is never synced
// (google/leveldb#193), so an unsynced write can be lost while a later synced one, in the
// next log file, survives. `powerLoss(keep)` keeps exactly the synced writes and the
// unsynced ones `keep` picks.
import type { KV, KVOp } from '../../checkpoint/kv';

export class PowerLossKV implements KV {
  private current = new Map<string, Uint8Array>();
  /** What survived the last power loss (or nothing); the writes since are `log` from `since` on. */
  private base = new Map<string, Uint8Array>();
  private since = 0;
  /** Every write, in order, with its sync flag (for the durability assertions). */
  readonly log: Array<{ ops: readonly KVOp[]; sync: boolean }> = [];

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.current.get(key);
  }

  async write(ops: readonly KVOp[], options: { sync: boolean }): Promise<void> {
    apply(this.current, ops);
    this.log.push({ ops, sync: options.sync });
  }

  async *entries(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]> {
    const keys = [...this.current.keys()].filter((k) => k >= range.gte && k < range.lt).sort();
    for (const k of keys) yield [k, this.current.get(k)!];
  }

  async close(): Promise<void> {}

  /**
   * The machine lost power: synced writes survive, and of the unsynced ones those for which
   * `keep(n)` is true (n counts unsynced writes since the last power loss, from 0). Each
   * write is atomic (a LevelDB write batch is one log record).
   */
  keys(): string[] {
    return [...this.current.keys()].sort();
  }

  /**
   * The newest `n` writes are gone, synced or not, and nothing says so: a write log cut
   * short (LevelDB reads a truncated log to its last whole record and reports nothing).
   */
  dropNewest(n: number): void {
    const durable = new Map(this.base);
    for (const w of this.log.slice(this.since, Math.max(this.since, this.log.length - n))) apply(durable, w.ops);
    this.base = durable;
    this.current = new Map(durable);
    this.since = this.log.length;
  }

  /** Damages the stored value of `key` in place (a flipped bit, a cut value): it stays damaged across power losses. */
  damage(key: string, how: 'flip' | 'truncate', at: number): void {
    const value = this.current.get(key);
    if (value === undefined) return;
    let damaged: Uint8Array;
    if (how === 'flip') {
      damaged = Uint8Array.from(value);
      if (damaged.length > 0) damaged[(at >>> 3) % damaged.length]! ^= 1 << (at & 7);
    } else {
      damaged = value.slice(0, at % Math.max(1, value.length));
    }
    this.current.set(key, damaged);
    if (this.base.get(key) === value) this.base.set(key, damaged);
  }

  /** The state now, to put back with `restore` (a backup of the checkpoint taken at this moment). */
  snapshot(): () => void {
    const kept = new Map(this.current);
    return () => {
      this.base = new Map(kept);
      this.current = new Map(kept);
      this.since = this.log.length;
    };
  }

  powerLoss(keep: (n: number) => boolean = () => false): void {
    const durable = new Map(this.base);
    let n = 0;
    for (const w of this.log.slice(this.since)) if (w.sync || keep(n++)) apply(durable, w.ops);
    this.base = durable;
    this.current = new Map(durable);
    this.since = this.log.length;
  }
}

function apply(map: Map<string, Uint8Array>, ops: readonly KVOp[]): void {
  for (const op of ops) {
    if (op.type === 'put') map.set(op.key, op.value);
    else map.delete(op.key);
  }
}
