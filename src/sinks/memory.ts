// An in-memory sink for tests and examples: idempotent per batch id like any sink.
import type { Sink, SinkBatch } from '../contracts';

export interface MemorySink<T> extends Sink<T> {
  /** Outputs per batch id, as last written. */
  readonly batches: Map<number, readonly T[]>;
  /** Every write call, including redeliveries. */
  readonly writes: number;
  /** All outputs in batch order. */
  all(): T[];
}

export function memorySink<T>(name = 'memory'): MemorySink<T> {
  const batches = new Map<number, readonly T[]>();
  let writes = 0;
  return {
    name,
    batches,
    get writes() {
      return writes;
    },
    async write(batch: SinkBatch<T>) {
      writes++;
      batches.set(batch.id, [...batch.outputs]);
    },
    all() {
      return [...batches.keys()].sort((a, b) => a - b).flatMap((id) => batches.get(id)!);
    },
  };
}
