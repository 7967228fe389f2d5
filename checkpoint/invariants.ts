// Invariants of the protocol (DESIGN.md "Invariants" 1–3), asserted before every write of
// a batch where they cost a few comparisons, as TigerBeetle does in production code. A
// batch continues the committed state moved over the batches in flight before it
// (`afterFlight`), so pipelined batches are held to the same rule. A
// broken one is a bug in tidemark; going on could commit a gap or an overlap for good, so
// the write does not happen and the run stops (InvariantError, never retried).
import { InvariantError } from './errors';
import { partitionKey, type OffsetMap, type Range } from './model';

/** What a batch continues: the committed state. */
export interface Committed {
  readonly positions: OffsetMap;
  readonly lastCommitted: number;
}

interface BatchShape {
  readonly id: number;
  readonly ranges: readonly Range[];
}

export function invariant(ok: boolean, dir: string, detail: () => string): asserts ok {
  if (!ok) throw new InvariantError(dir, detail());
}

/**
 * The committed state as it will be once `flight` (the batches in flight before the one
 * checked, in id order) has committed: what that batch must continue.
 */
export function afterFlight(committed: Committed, flight: readonly BatchShape[]): Committed {
  if (flight.length === 0) return committed;
  const positions: Record<string, number> = { ...committed.positions };
  for (const b of flight) for (const r of b.ranges) positions[partitionKey(r)] = r.until;
  return { positions, lastCommitted: flight[flight.length - 1]!.id };
}

/**
 * The batch is the next one (id = last committed + 1) and each of its ranges starts at its
 * partition's position, after the offsets recorded as lost there (onDataLoss 'skip'); a
 * partition without a position starts where the source says. One range per partition.
 */
export function assertContinues(batch: BatchShape, lost: readonly Range[], committed: Committed, dir: string): void {
  invariant(batch.id === committed.lastCommitted + 1, dir, () => `batch ${batch.id} does not follow the last committed batch ${committed.lastCommitted}`);
  const seen = new Set<string>();
  for (const r of batch.ranges) {
    const key = partitionKey(r);
    invariant(!seen.has(key), dir, () => `batch ${batch.id} has two ranges for ${key}`);
    seen.add(key);
    invariant(r.from <= r.until, dir, () => `batch ${batch.id} has ${key} [${r.from}, ${r.until}), which ends before it starts`);
    let position = committed.positions[key];
    if (position === undefined) continue;
    for (const l of lost) if (partitionKey(l) === key && l.from === position) position = l.until;
    invariant(r.from === position, dir, () => `batch ${batch.id} reads ${key} from offset ${r.from}, but the partition's position is ${position}`);
  }
}

/** A COMMIT continues the committed state and moves each range's partition to its `until`, no position backwards. */
export function assertCommit(batch: BatchShape, lost: readonly Range[], committed: Committed, positions: OffsetMap, dir: string): void {
  assertContinues(batch, lost, committed, dir);
  for (const r of batch.ranges) {
    const key = partitionKey(r);
    invariant(positions[key] === r.until, dir, () => `batch ${batch.id} commits ${key} at position ${positions[key]}, not at its range's end ${r.until}`);
  }
  for (const [key, before] of Object.entries(committed.positions)) {
    const after = positions[key];
    invariant(after !== undefined && after >= before, dir, () => `batch ${batch.id} moves ${key} back from position ${before} to ${after}`);
  }
}
