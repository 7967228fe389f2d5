// The data a checkpoint holds. Plain, JSON-friendly values: they are stored as they
// are, and the pure planner and recovery decision work on them directly.

/** One (topic, partition) of a source. */
export interface PartitionRef {
  readonly topic: string;
  readonly partition: number;
}

/** `[from, until)` of one partition. Offsets inside may be sparse; a range is defined by offsets, never by a count. */
export interface Range extends PartitionRef {
  readonly from: number;
  readonly until: number;
}

/** Offsets per partition, keyed by `partitionKey()`. */
export type OffsetMap = Readonly<Record<string, number>>;

/** A safe integer ≥ `min` (offsets, partitions, counts, limits): the one check of "a whole number". */
export function isWholeNumber(v: unknown, min = 0): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

export function partitionKey(p: PartitionRef): string {
  return `${p.topic}/${p.partition}`;
}

export function parsePartitionKey(key: string): PartitionRef {
  const slash = key.lastIndexOf('/');
  return { topic: key.slice(0, slash), partition: Number(key.slice(slash + 1)) };
}

export type BatchState = 'planned' | 'staged' | 'committed';

export interface BatchRecord {
  readonly id: number;
  readonly state: BatchState;
  readonly ranges: readonly Range[];
  /** Offsets the source no longer had, skipped under onDataLoss: 'skip'; recorded at commit. */
  readonly lost?: readonly Range[];
  /** Records read (set when staged). */
  readonly recordsIn?: number;
  /** Key and value bytes of the records read (set when staged). */
  readonly bytesIn?: number;
  /** Outputs per sink name (set when staged). */
  readonly outputsOut?: Readonly<Record<string, number>>;
  /** Chunks of staged outputs per sink name; absent when the job does not stage outputs. */
  readonly stagedChunks?: Readonly<Record<string, number>>;
  /** Bytes of the staged outputs as encoded in the checkpoint (set with stagedChunks). */
  readonly stagedBytes?: number;
  /** The fingerprint of the code that planned (and, once staged, computed) the batch. */
  readonly fingerprint: string;
  readonly plannedAt: number;
  readonly stagedAt?: number;
  readonly committedAt?: number;
  /** Milliseconds per phase, filled in as the batch goes. */
  readonly durations?: Readonly<Record<string, number>>;
  /** The id is used up, its outputs were never committed: by `tidemark reset --discard-in-flight`, or dropped in group mode. */
  readonly discarded?: boolean;
  /** Who discarded it: `reset`, or `handoff` (group mode: its partition had moved). Absent in records older than 2026-11-30: reset. */
  readonly discardedBy?: DiscardedBy;
}

export type DiscardedBy = 'reset' | 'handoff';

export interface FingerprintEntry {
  readonly fingerprint: string;
  readonly since: number;
  /** Why it changed: 'first run', 'code change, nothing in flight', 'accepted with --accept-code-change', … */
  readonly note: string;
}

/**
 * Resets and lost ranges kept in a checkpoint: the newest this many of each; older ones are
 * pruned in the write that adds one, and counted (`resetsPruned`, `lostPruned`) so that
 * `inspect` says older history existed. Unbounded, a daemon skipping data or reset by a
 * script grew its checkpoint (and the meta read at every start) without end (2026-11).
 */
export const RETAIN_HISTORY = 100;

export interface ResetEntry {
  readonly at: number;
  /** What the positions were reset to, as asked: 'earliest', 'latest', 'timestamp:<ms>', 'file <path>'. */
  readonly to?: string;
  /** The positions of the partitions the reset changed (checkpoints written before 2026-11-30 hold every partition's). */
  readonly before: OffsetMap;
  readonly after: OffsetMap;
  readonly discarded?: number;
}

export interface CheckpointMeta {
  readonly format: number;
  readonly job: string;
  readonly source: string;
  readonly sinks: readonly string[];
  readonly fingerprint: string;
  readonly fingerprints: readonly FingerprintEntry[];
  /** The newest RETAIN_HISTORY resets, oldest first. */
  readonly resets: readonly ResetEntry[];
  /** Older resets pruned from `resets` (absent: none). */
  readonly resetsPruned?: number;
  readonly createdAt: number;
  /**
   * A random id made with the checkpoint: the file sink records it in its directory and
   * refuses another checkpoint's batches, and the progress marks the source commits
   * outside the checkpoint name it (recovery/crosscheck.ts). Absent in checkpoints made before 2026-11-30;
   * their next run adds one.
   */
  readonly checkpointId?: string;
}

/** A range of offsets recorded as lost under `onDataLoss: 'skip'`. */
export interface LostRange extends Range {
  readonly batchId: number;
  readonly at: number;
}

/** Group mode: what the daemon of a checkpoint was given at its last join of the group (for inspect). */
export interface GroupOwnership {
  readonly group: string;
  readonly generation: number;
  readonly memberId: string;
  /** When the assignment was applied (ms since the epoch). */
  readonly at: number;
  /** Partition key → the epoch it is owned at (the generation it was taken at). */
  readonly partitions: OffsetMap;
}

/** The most batches in flight at once (batch.maxInFlight's bound; load() looks no further). */
export const MAX_IN_FLIGHT = 16;

/** What recovery needs from a checkpoint: small, loaded whole at start. */
export interface CheckpointView {
  readonly meta: CheckpointMeta | undefined;
  readonly positions: OffsetMap;
  readonly lastCommitted: number;
  /** The oldest batch in flight (planned or staged, not committed): `flight[0]`. */
  readonly inFlight: BatchRecord | undefined;
  /**
   * Every batch in flight, in id order from lastCommitted + 1 without a gap: more than one
   * only when batches are pipelined (batch.maxInFlight, DESIGN.md "Pipelining").
   */
  readonly flight: readonly BatchRecord[];
}
