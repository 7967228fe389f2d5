// Delivery of a staged batch to its sinks, the third step of the protocol.
//
// A batch's staged outputs are named streams: `outputs` for every main sink, the
// transform's `dead-letters`, and the outputs sinks `rejected` (onSinkError
// 'dead-letter'). Each sink gets the outputs minus those it rejected before; a write that
// fails is retried with backoff while the batch stays staged; the dead-letter sink gets the
// dead letters and the rejections. Every write is idempotent per batch id, so delivering a
// recovered batch again is this same code.
import { isTidemarkError } from '../checkpoint/errors';
import { SinkError, type SinkRejectedError } from './errors';
import type { BatchRecord } from '../checkpoint/model';
import type { CheckpointStore } from '../checkpoint/store';
import type { PartitionOwner, RejectedOutput, Sink } from './contracts';
import type { CrashPoint } from './crash-seam';
import type { Job } from './job';
import type { Logger } from './log';
import { retry } from './retry';
import type { TransformResult } from './transform';

/** Names of the streams of staged outputs of a batch. */
const OUTPUTS = 'outputs';
const DEAD_LETTERS = 'dead-letters';
/** Outputs sinks rejected (onSinkError 'dead-letter'), staged before the rest is written so a redelivery sets aside the same ones. */
const REJECTED = 'rejected';

export type Streams = Record<string, unknown[]>;

/** The streams a transform's result is staged as, and their counts (recorded in the batch). */
export function streamsOf<T>(result: TransformResult<T>): { streams: Streams; counts: Record<string, number> } {
  return {
    streams: { [OUTPUTS]: result.outputs, ...(result.deadLetters.length > 0 ? { [DEAD_LETTERS]: result.deadLetters } : {}) },
    counts: { [OUTPUTS]: result.outputs.length, [DEAD_LETTERS]: result.deadLetters.length },
  };
}

export interface DeliveryContext<T> {
  readonly job: Job<T>;
  readonly store: CheckpointStore;
  readonly log: Logger;
  readonly crash: CrashPoint;
  /** The checkpoint's id (meta.checkpointId), handed to every sink write. */
  readonly checkpointId?: string;
  /** Group mode: the owner of the batch's one partition, handed to every sink write. */
  readonly owner?: PartitionOwner;
}

export interface Delivered {
  /** The batch as staged last (again, when a sink rejected outputs). */
  readonly batch: BatchRecord;
  readonly outputs: number;
  readonly deadLetters: number;
}

/** Delivers a staged batch to every sink, then its dead letters to the dead-letter sink. */
export async function deliverBatch<T>(ctx: DeliveryContext<T>, batch: BatchRecord, streams: Streams): Promise<Delivered> {
  const main = (streams[OUTPUTS] ?? []) as T[];
  const rejected = (streams[REJECTED] ?? []) as RejectedOutput[];
  const restage = (current: BatchRecord): Promise<BatchRecord> => ctx.store.stageBatch(current, { ...streams, [REJECTED]: rejected });
  let staged = batch;
  for (const sink of ctx.job.sinks) staged = await deliverSettingAside(ctx, sink, staged, main, rejected, restage);
  const dead = [...(streams[DEAD_LETTERS] ?? []), ...rejected];
  // In group mode an empty write too: the dead-letter sink's per-partition ledger must follow every range (deliver()).
  if (ctx.job.deadLetterSink && (dead.length > 0 || ctx.owner)) await deliver(ctx, ctx.job.deadLetterSink, staged, dead as never[]);
  return { batch: staged, outputs: main.length, deadLetters: dead.length };
}

/**
 * Delivers to one sink, leaving out the outputs it rejected before. When it rejects more
 * (`SinkRejectedError`) under onSinkError 'dead-letter', they are added to `rejected` and
 * the batch is staged again (synced) before the rest is written: the rejection becomes
 * part of the batch, so a redelivery after a crash sets aside exactly the same outputs.
 * Under 'fail' the rejection propagates; its message names the batch and the output.
 */
async function deliverSettingAside<T>(
  ctx: DeliveryContext<T>, sink: Sink<T>, batch: BatchRecord, outputs: readonly T[], rejected: RejectedOutput[],
  restage: (batch: BatchRecord) => Promise<BatchRecord>,
): Promise<BatchRecord> {
  for (;;) {
    const aside = new Set(rejected.filter((r) => r.sink === sink.name).map((r) => r.index));
    // Indexes of the outputs written (into `outputs`); none set aside: all of them, and no index list is built.
    const kept = aside.size === 0 ? undefined : outputs.flatMap((_, i) => (aside.has(i) ? [] : [i]));
    try {
      await deliver(ctx, sink, batch, kept ? kept.map((i) => outputs[i]!) : outputs);
      return batch;
    } catch (err) {
      if (!isTidemarkError(err) || err.code !== 'TIDEMARK_SINK_REJECTED' || ctx.job.onSinkError !== 'dead-letter') throw err;
      const rows = (err as SinkRejectedError).rejected;
      const indexOf = (i: number): number | undefined => (kept ? kept[i] : i < outputs.length ? i : undefined);
      if (rows.length === 0 || rows.some((r) => indexOf(r.index) === undefined)) throw err;
      for (const r of rows) rejected.push({ sink: sink.name, batchId: batch.id, index: indexOf(r.index)!, output: r.output, error: r.reason });
      ctx.log.warn({ sink: sink.name, batch: batch.id, rejected: rows.length }, `sink ${sink.name} rejected ${rows.length} outputs of batch ${batch.id}: routing them to the dead-letter sink, writing the rest`);
      batch = await restage(batch);
    }
  }
}

async function deliver<T, O>(ctx: DeliveryContext<T>, sink: Sink<O>, batch: BatchRecord, outputs: readonly O[]): Promise<void> {
  // Group mode writes an empty range too: a sink's per-partition ledger must follow every range, or the next one is a gap.
  if (outputs.length === 0 && !ctx.owner) return;
  await ctx.crash(`delivering:${sink.name}`);
  await retry(() => {
    // Invariant 7: a process that lost the checkpoint's lock (frozen while another took it) writes to no sink either.
    ctx.store.assertHeld();
    return sink.write({ id: batch.id, job: ctx.job.name, ...(ctx.checkpointId !== undefined ? { checkpoint: ctx.checkpointId } : {}), ranges: batch.ranges, outputs, ...(ctx.owner ? { owner: ctx.owner } : {}) });
  }, {
    baseMs: 100, maxMs: 5_000, attempts: ctx.job.sinkAttempts,
    retryable: (err) => !isTidemarkError(err),
    giveUp: (err) => new SinkError(sink.name, batch.id, err),
    onRetry: (err, attempt, wait) => ctx.log.warn({ sink: sink.name, batch: batch.id, attempt, err: (err as Error).message },
      `sink ${sink.name} failed; retrying in ${wait} ms (the batch stays staged)`),
  });
  await ctx.crash(`delivered:${sink.name}`);
}
