// The contracts between the engine and the outside: sources, sinks, records.
import type { OffsetMap, PartitionRef, Range } from '../checkpoint/model';
import type { LedgerEntry } from '../recovery/handoff';

export type { OffsetMap, PartitionRef, Range };

export interface SourceRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
  readonly headers?: Readonly<Record<string, string | Buffer | undefined>>;
}

/**
 * What `Source.read` yields: records of the ranges, in offset order. `bytes`, the sum of their
 * keys' and values' lengths, is set by a source that counts them as it makes the records (every
 * built-in one), so the engine does not count each record again; a plain array works as well
 * (the engine then counts it).
 */
export interface SourceChunk extends Array<SourceRecord> {
  bytes?: number;
}

export interface Source {
  /** Stable; stored in the checkpoint so a checkpoint is never used with another source. */
  readonly id: string;
  /** The partitions to read now; may grow between calls (patterns, added partitions). */
  partitions(): Promise<PartitionRef[]>;
  offsets(parts: readonly PartitionRef[], which: 'earliest' | 'latest'): Promise<OffsetMap>;
  /** Where a partition the checkpoint has never seen starts (the source's `startingOffsets`). */
  startingOffsets(parts: readonly PartitionRef[]): Promise<OffsetMap>;
  /** Reads exactly the given ranges; a range ends when the position reaches `until`. */
  read(ranges: readonly Range[], signal: AbortSignal): AsyncIterable<SourceChunk>;
  /**
   * Resolves when records may have arrived past what was last read (or after `timeoutMs`, or
   * on abort), so an idle daemon plans again at once instead of at its next poll. Optional:
   * without it the engine polls every `batch.pollIntervalMs`.
   */
  waitForData?(timeoutMs: number, signal: AbortSignal): Promise<void>;
  /**
   * Called after a batch commits, with the new positions (e.g. Kafka group offsets, for lag
   * tools) and `mark`, a string naming the checkpoint and the batch to store beside them.
   */
  committed?(positions: OffsetMap, mark?: string): Promise<void>;
  /**
   * The positions and marks `committed` stored, as the outside holds them now: at start the
   * engine checks that the checkpoint is not behind them (recovery/crosscheck.ts). Optional.
   */
  reportedPositions?(parts: readonly PartitionRef[]): Promise<ReportedPositions>;
  /**
   * Per partition, the first offset whose record timestamp is ≥ `timestamp` (ms), or the end
   * when there is none (Kafka's ListOffsets by time). Optional: `tidemark reset --to
   * timestamp:<ms>` reads the partitions to find it when a source does not offer it.
   */
  offsetsForTimestamp?(parts: readonly PartitionRef[], timestamp: number): Promise<OffsetMap>;
  close(): Promise<void>;
}

/** What `Source.reportedPositions` returns: where the record lives (for messages) and its entries. */
export interface ReportedPositions {
  readonly where: string;
  readonly positions: ReadonlyArray<{ readonly partition: string; readonly offset: number; readonly metadata: string | null }>;
}

/** Group mode: which partition a write is for, and the epoch (group generation) of the owner that makes it. */
export interface PartitionOwner {
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
}

export interface SinkBatch<T> {
  readonly id: number;
  /** The job's name (set by the engine): sinks that keep a ledger key it by job, sink and batch id. */
  readonly job?: string;
  /** The checkpoint's id (set by the engine): a sink that only one checkpoint may write records it (fileSink). */
  readonly checkpoint?: string;
  readonly ranges: readonly Range[];
  readonly outputs: readonly T[];
  /**
   * Group mode (docs/scale-out.md): the write is one partition's range (`ranges` holds exactly
   * it) by the owner of `owner.epoch`. A sink with a ledger keeps it per (job, sink, topic,
   * partition) and refuses an older epoch (PartitionFencedError, nothing written); a range it
   * already holds is a duplicate and does nothing (recovery/handoff.ts judgeLedgerWrite).
   */
  readonly owner?: PartitionOwner;
}

export interface Sink<T> {
  /** Stable; stored in the checkpoint and used in output paths. Letters, digits, `.`, `_`, `-`. */
  readonly name: string;
  /**
   * Must make a second delivery of the same batch id harmless. Throw `SinkRejectedError`
   * (having written nothing) for outputs the destination refuses permanently; any other
   * error is retried with backoff.
   */
  write(batch: SinkBatch<T>): Promise<void>;
  /**
   * The last batch id this sink's ledger holds for the job (undefined when none). Optional:
   * at start the engine checks the checkpoint is not behind it (recovery/crosscheck.ts).
   */
  lastDelivered?(job?: string): Promise<number | undefined>;
  /**
   * Group mode: called when this daemon is assigned a partition, before any write for it.
   * Records that `epoch` owns the partition, so writes of older epochs are refused from now on;
   * throws PartitionFencedError when a newer epoch already has (recovery/handoff.ts claimLedger),
   * with the offset the ledger holds the partition delivered up to. Returns what the ledger held
   * before the claim, when the sink keeps one: the engine stops with GroupStateLostError when the
   * group has no offset for a partition that a ledger holds delivered (the group was deleted or
   * its offsets expired).
   */
  claim?(claim: { readonly job: string } & PartitionOwner): Promise<LedgerEntry | void>;
  close?(): Promise<void>;
}

/** What the transform sees besides the records (like Spark's HasOffsetRanges). */
export interface BatchContext {
  readonly batchId: number;
  readonly ranges: readonly Range[];
}

/** A record the transform could not process, routed to the dead-letter sink. */
export interface DeadLetter {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: string | null;
  readonly error: string;
  readonly batchId: number;
}

/**
 * An output a sink rejected permanently, routed to the dead-letter sink under `onSinkError:
 * 'dead-letter'`; or one the staging codec refused, under `onTransformError: 'dead-letter'`.
 */
export interface RejectedOutput {
  /** The sink that rejected it, or `(stage)` (no sink name has parentheses): then `output` is its util.inspect text. */
  readonly sink: string;
  readonly batchId: number;
  /** Its position in the batch's outputs. */
  readonly index: number;
  readonly output: unknown;
  readonly error: string;
}
