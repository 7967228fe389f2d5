// The key layout. Ids are zero-padded so that key order is batch order.
import { partitionKey, type PartitionRef } from './model';

const pad = (n: number): string => String(n).padStart(16, '0');

export const keys = {
  meta: 'meta',
  /** `{ positions, lastCommitted }`: the committed state, rewritten by every commit. */
  state: 'state',
  batch: (id: number): string => `batch!${pad(id)}`,
  batches: { gte: 'batch!', lt: 'batch!~' },
  output: (id: number, sink: string, chunk: number): string => `out!${pad(id)}!${sink}!${String(chunk).padStart(6, '0')}`,
  outputs: { gte: 'out!', lt: 'out!~' },
  lost: (batchId: number, p: PartitionRef): string => `lost!${pad(batchId)}!${partitionKey(p)}`,
  lostAll: { gte: 'lost!', lt: 'lost!~' },
  /** How many `lost!` records were pruned (only the newest RETAIN_HISTORY are kept). */
  lostPruned: 'lost-pruned',
  /** Group mode: the partitions this checkpoint's daemon owned at its last assignment, and their epochs. */
  ownership: 'group-ownership',
};
