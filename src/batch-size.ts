// The batch size that follows the load (`batch.targetMs`, issue 17): a pure PID-style
// controller, after Spark's PIDRateEstimator (spark.streaming.backpressure, gains 1.0 / 0.2 /
// 0.0), on the batch size instead of a rate. From each batch's records and processing time
// it measures records/ms and sizes the next batch so that its time approaches the target:
//
//   error    e = targetMs − ms                         (> 0: room to grow)
//   next     = size + (kp·e + ki·Σe + kd·Δe) · rate    (rate = records / ms)
//
// With kp = 1 the proportional step alone lands on records × target / ms, whose fixed point is
// ms = target even with a fixed cost per batch (an fsync, a round trip); the integral pulls
// through errors that last (a time that grows faster than the size). It grows only while the
// size is the constraint (the batch was full, or late), so an idle source or a static limit
// does not wind it up. The result stays within [1, maxRecords], where the engine's maxRecords is the
// memory bound; the static limits (maxRecordsPerPartition, maxBatchBytes) still apply in
// the planner.

export interface BatchSizeGains {
  readonly proportional: number;
  readonly integral: number;
  readonly derivative: number;
}

/** Spark's defaults (spark.streaming.backpressure.pid.*). */
export const DEFAULT_GAINS: BatchSizeGains = { proportional: 1, integral: 0.2, derivative: 0 };

/** The first batch's size, before anything was measured. */
export const FIRST_SIZE = 1_000;

export interface BatchSizer {
  /** Records the next batch may hold, over all partitions. */
  readonly size: number;
  /** Σ error (ms), accumulated only while the size limits the batch. */
  readonly integral: number;
  readonly lastError: number | undefined;
  /** The batch before this one (records, ms): tells a cost per write from a cost per record. */
  readonly last?: BatchObservation;
  /**
   * A size below which shrinking was seen not to help (a late batch a third smaller was no
   * faster): the cost is per write, above the target. Cleared by a batch on time.
   */
  readonly floor?: number;
}

export interface BatchObservation {
  /** Records the batch held. */
  readonly records: number;
  /** Its processing time, plan to commit. */
  readonly ms: number;
}

export function firstBatchSizer(maxRecords: number): BatchSizer {
  return { size: clamp(FIRST_SIZE, maxRecords), integral: 0, lastError: undefined };
}

const clamp = (size: number, maxRecords: number): number => Math.max(1, Math.min(Math.floor(maxRecords), Math.round(size)));

/** The sizer after a batch: what the next one may hold. A batch without records or time tells nothing. */
export function nextBatchSizer(sizer: BatchSizer, batch: BatchObservation, targetMs: number, maxRecords: number, gains: BatchSizeGains = DEFAULT_GAINS): BatchSizer {
  if (batch.records <= 0 || !(batch.ms > 0)) return { ...sizer, size: clamp(sizer.size, maxRecords) };
  const rate = batch.records / batch.ms;
  const error = targetMs - batch.ms;
  // The size was the constraint: the batch was full, or it was late (then shrinking is the way).
  const sizeBound = batch.records >= 0.95 * sizer.size || error < 0; // the planner's share per partition rounds down
  // The integral is bounded to a few targets' worth, so a long stretch at a bound is undone quickly.
  const integral = sizeBound ? Math.max(-4 * targetMs, Math.min(4 * targetMs, sizer.integral + error)) : sizer.integral;
  const derivative = sizer.lastError === undefined ? 0 : error - sizer.lastError;
  const step = (gains.proportional * error + gains.integral * integral + gains.derivative * derivative) * rate;
  // The step is taken from what the batch held, not from the size it was allowed: a batch the source kept small says nothing about a bigger one.
  const base = Math.min(sizer.size, batch.records);
  // Shrinking did not help: a late batch with a third fewer records than a late one before took
  // as long (within noise). The time is a cost per write (a round trip) above the target, and a
  // smaller batch would only cut throughput: before this guard, batches went to one record.
  const last = sizer.last;
  const perWrite = error < 0 && last !== undefined && last.ms > targetMs && batch.records <= (2 / 3) * last.records && batch.ms >= 0.95 * last.ms;
  const floor = error >= 0 ? undefined : perWrite ? Math.max(sizer.floor ?? 0, last.records) : sizer.floor;
  return {
    size: clamp(Math.max(base + step, floor ?? 0), maxRecords), integral: perWrite ? 0 : integral, lastError: error, last: batch,
    ...(floor !== undefined ? { floor } : {}),
  };
}

/**
 * The memory bound on a batch's records: a quarter of the heap still free, at the measured
 * bytes per record (a batch is held as records, then as outputs, then staged).
 */
export function memoryRecordCap(heap: { readonly heap_size_limit: number; readonly used_heap_size: number }, avgRecordBytes: number): number {
  return Math.max(1, Math.floor(Math.max(0, heap.heap_size_limit - heap.used_heap_size) / 4 / Math.max(1, avgRecordBytes)));
}
