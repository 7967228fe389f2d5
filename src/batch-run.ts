// One batch carried from its current state to COMMITTED: read, transform, stage, deliver,
// commit (docs/protocol.md). Both engines run their batches through it — the single
// daemon's (src/engine.ts) and group mode's (src/group/engine.ts), whose batches hold one
// partition's range and name its owner to the sinks — so the protocol's steps are written
// once.
import { UnstageableOutputError } from '../checkpoint/faithful';
import type { BatchRecord, OffsetMap, Range } from '../checkpoint/model';
import type { CheckpointStore } from '../checkpoint/store';
import { hasStagedOutputs } from '../recovery/decide';
import { PhaseTimer } from './batch-stats';
import type { PartitionOwner, Source, SourceChunk, SourceRecord } from './contracts';
import type { CrashPoint } from './crash-seam';
import { deliverBatch, streamsOf, type Delivered, type Streams } from './delivery';
import type { Job } from './job';
import type { Logger } from './log';
import { advancePositions } from './planner';
import { chunkBytes } from './sources/chunk';
import { runTransform, setAsideUnstageable, type TransformResult } from './transform';

export interface BatchRunContext<T> {
  readonly job: Job<T>;
  readonly store: CheckpointStore;
  readonly log: Logger;
  readonly crash: CrashPoint;
  readonly fingerprint: string;
  /** The checkpoint's id (meta.checkpointId), handed to every sink write. */
  readonly checkpointId?: string;
  /** Group mode: the owner of the batch's one partition, named in every sink write. */
  readonly owner?: PartitionOwner;
  /** Measures the records read (the planner's bytes-per-record estimate). */
  readonly sizes: RecordSizes;
  /** Told the batch once it is STAGED (the status page shows the batch in flight). */
  readonly onStaged?: (staged: BatchRecord) => void;
}

export interface BatchOutcome {
  /** The batch as committed. */
  readonly batch: BatchRecord;
  readonly positions: OffsetMap;
  readonly delivered: Delivered;
  readonly records: number;
  readonly bytesIn: number;
  readonly durations: Readonly<Record<string, number>>;
}

/** The planner's estimate of bytes per record (key + value + overhead), from what was read. */
export class RecordSizes {
  /** Undefined until a batch was read. */
  average: number | undefined;

  measure(records: number, bytes: number): void {
    if (records === 0) return;
    const measured = bytes / records + 64;
    this.average = this.average === undefined ? measured : 0.7 * this.average + 0.3 * measured;
  }
}

/** Reads the ranges; `bytes` counts keys and values, as the source's chunks carry them. */
export async function readRanges(source: Source, ranges: readonly Range[], sizes: RecordSizes): Promise<{ records: SourceRecord[]; bytes: number }> {
  const chunks: SourceChunk[] = [];
  let bytes = 0;
  const controller = new AbortController();
  for await (const chunk of source.read(ranges, controller.signal)) {
    chunks.push(chunk);
    bytes += chunkBytes(chunk);
  }
  // concat copies the chunks' records several times faster than a push per record; 4,096
  // chunks per call stay far below the limit on a call's arguments.
  let records: SourceRecord[] = [];
  for (let i = 0; i < chunks.length; i += 4096) records = records.concat(...chunks.slice(i, i + 4096));
  sizes.measure(records.length, bytes);
  return { records, bytes };
}

/** A batch read, transformed and STAGED (or found staged), ready for its delivery and COMMIT. */
export interface PreparedBatch {
  readonly batch: BatchRecord;
  readonly streams: Streams;
  readonly records: number;
  readonly bytesIn: number;
  readonly timer: PhaseTimer;
}

/**
 * The first half of a batch: its outputs, staged. A batch found staged reads its staged
 * outputs back; anything else is read from its ranges, transformed and staged. With
 * batches pipelined, this runs for batch N+1 while N is delivered (src/engine.ts).
 */
export async function prepareBatch<T>(ctx: BatchRunContext<T>, batch: BatchRecord): Promise<PreparedBatch> {
  const { job, store } = ctx;
  const timer = new PhaseTimer(batch.durations);
  if (hasStagedOutputs(batch)) {
    const streams = await timer.time('read', () => store.readStagedOutputs(batch));
    return { batch, streams, records: batch.recordsIn ?? 0, bytesIn: batch.bytesIn ?? 0, timer };
  }
  const read = await timer.time('read', () => readRanges(job.source, batch.ranges, ctx.sizes));
  const records = read.records.length;
  const bytesIn = read.bytes;
  await ctx.crash('read');
  const result = await timer.time('transform', () => runTransform(job, read.records, { batchId: batch.id, ranges: batch.ranges }));
  read.records = []; // the input can be collected while the outputs are staged and delivered
  await ctx.crash('transformed');
  let streams: Streams | undefined;
  const stage = (r: TransformResult<T>): Promise<BatchRecord> => {
    const computed = streamsOf(r);
    streams = computed.streams;
    return store.stageBatch(
      { ...batch, fingerprint: ctx.fingerprint, recordsIn: records, bytesIn, outputsOut: computed.counts },
      job.stageOutputs ? streams : undefined,
    );
  };
  // Encoding finds an output it cannot give back unchanged at no extra pass; only then are all of them looked for.
  const staged = await timer.time('stage', () => stage(result).catch((err: unknown) => {
    if (!(err instanceof UnstageableOutputError)) throw err;
    return stage(setAsideUnstageable(job, result, batch.id));
  }));
  ctx.onStaged?.(staged);
  await ctx.crash('staged');
  return { batch: staged, streams: streams!, records, bytesIn, timer };
}

/** The second half: deliver the staged outputs to every sink, then COMMIT, from `positions` (the committed ones). */
export async function finishBatch<T>(ctx: BatchRunContext<T>, prepared: PreparedBatch, positions: OffsetMap): Promise<BatchOutcome> {
  const { timer, records, bytesIn } = prepared;
  const delivered = await timer.time('deliver', () => deliverBatch(ctx, prepared.batch, prepared.streams));
  const staged = delivered.batch;
  const durations = timer.durations;
  const next = advancePositions(positions, staged.ranges);
  const committed = await timer.time('commit', () => ctx.store.commitBatch({ ...staged, durations }, next, staged.lost ?? []));
  await ctx.crash('committed');
  return { batch: committed, positions: next, delivered, records, bytesIn, durations };
}

/** Carries a batch from its current state to COMMITTED, from `positions` (the committed ones). */
export async function runBatch<T>(ctx: BatchRunContext<T>, batch: BatchRecord, positions: OffsetMap): Promise<BatchOutcome> {
  return finishBatch(ctx, await prepareBatch(ctx, batch), positions);
}
