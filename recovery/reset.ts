// decideReset: what `tidemark reset` does to a checkpoint, as a pure function.
//
//   checkpoint + requested positions (+ the source's latest offsets, when known) →
//     { positions before and after, the batch in flight to drop, the meta recording it } | a typed error
//
// The CLI looks offsets up, asks, prints, and writes the decision with store.resetPositions.
import { BadConfigError } from '../checkpoint/errors';
import { partitionKey, RETAIN_HISTORY, type BatchRecord, type CheckpointMeta, type CheckpointView, type OffsetMap, type ResetEntry } from '../checkpoint/model';
import { checkIdentity, describeFlight, type JobIdentity } from './decide';

export interface ResetCheck {
  readonly dir: string;
  readonly view: CheckpointView;
  /** The job given with --job, when one was: it must be the checkpoint's. */
  readonly job?: Pick<JobIdentity, 'name' | 'sourceId'>;
  /** The on-disk format this build understands. */
  readonly format: number;
  readonly discardInFlight: boolean;
  /** The meta of a new checkpoint, when the job is given: a reset of an empty checkpoint starts it at the positions asked. */
  readonly firstMeta?: CheckpointMeta;
}

export interface ResetInput extends ResetCheck {
  /** The new positions of the partitions named; the others keep theirs. */
  readonly requested: OffsetMap;
  /** The source's next offsets, when known: a position beyond them is refused. */
  readonly latest?: OffsetMap;
  /** The source's partitions (`topic/partition`), when the job is given: they are known even before a batch read them. */
  readonly sourcePartitions?: readonly string[];
  /** Accept partitions neither the checkpoint nor the source knows (--allow-new-partitions). */
  readonly allowNewPartitions?: boolean;
  /** The target as asked (`earliest`, `file <path>` …), recorded in the checkpoint's history. */
  readonly to: string;
  readonly now: number;
}

export interface PositionChange {
  readonly partition: string;
  readonly before: number | undefined;
  readonly after: number;
}

export interface ResetDecision {
  readonly before: OffsetMap;
  readonly after: OffsetMap;
  /** Every partition of before and after, sorted. */
  readonly changes: readonly PositionChange[];
  /** The batch in flight, dropped (its id is never used again). */
  /** The batches in flight that the reset drops (--discard-in-flight), in id order. */
  readonly discard: readonly BatchRecord[];
  /** False when the reset would change nothing: nothing is written. */
  readonly changed: boolean;
  readonly lastCommitted: number;
  /** The meta to write, with this reset recorded. */
  readonly meta: CheckpointMeta;
}

/** What can be refused before any offset is looked up: an empty checkpoint, another job's, a batch in flight not to be dropped. */
export function checkReset(input: ResetCheck): CheckpointMeta {
  const { dir, view } = input;
  const meta = view.meta ?? input.firstMeta;
  if (!meta) {
    throw new BadConfigError(`Checkpoint ${dir} is empty (no batch has run): nothing to reset. ` +
      'To start it at given positions, add --job <job.ts>: the reset then records the job as its owner.');
  }
  checkIdentity(dir, meta, input.format, input.job);
  if (view.flight.length > 0 && !input.discardInFlight) {
    throw new BadConfigError(
      `${describeFlight(view.flight)}: a reset under ${view.flight.length > 1 ? 'them' : 'it'} would be undone when ${view.flight.length > 1 ? 'they commit' : 'it commits'}. ` +
      'Finish it first (run the job and stop it with SIGTERM, which drains), or drop it with --discard-in-flight.');
  }
  return meta;
}

export function decideReset(input: ResetInput): ResetDecision {
  const meta = checkReset(input);
  const { view } = input;
  // A partition nobody has read is a typo until said otherwise: it would start a position no run reads.
  // One a batch in flight planned is known: the first batch of a partition may never commit (a damaged batch, SourceCorruptError).
  const known = new Set([...Object.keys(view.positions), ...view.flight.flatMap((b) => b.ranges.map(partitionKey)), ...(input.sourcePartitions ?? [])]);
  const unknown = Object.keys(input.requested).filter((k) => !known.has(k));
  if (unknown.length > 0 && !input.allowNewPartitions) {
    throw new BadConfigError(
      `--to ${input.to}: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a partition of the checkpoint` +
      `${input.sourcePartitions ? ' nor of the job\'s source' : ''} (${known.size === 0 ? 'it knows none' : `it knows ${[...known].sort().join(', ')}`}). ` +
      'Nothing was changed. Check the names (tidemark inspect shows the positions), or pass --allow-new-partitions to add them.');
  }
  if (input.latest) {
    const beyond = Object.entries(input.requested).filter(([k, o]) => input.latest![k] !== undefined && o > input.latest![k]!);
    if (beyond.length > 0) {
      throw new BadConfigError(
        `--to ${input.to}: ${beyond.map(([k, o]) => `${k} ${o} is beyond the source's end ${input.latest![k]}`).join(', ')}; ` +
        'the next run would stop as if the source went backwards. Nothing was changed. Give offsets at most the end (latest).');
    }
  }
  const before = view.positions;
  const after: OffsetMap = { ...before, ...input.requested };
  const changes = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()
    .map((partition) => ({ partition, before: before[partition], after: after[partition]! }));
  const discard = view.flight;
  const lastDiscarded = discard[discard.length - 1];
  return {
    before,
    after,
    changes,
    discard,
    changed: changes.some((c) => c.before !== c.after) || discard.length > 0,
    lastCommitted: view.lastCommitted,
    meta: recordReset(meta, { at: input.now, to: input.to, ...changedOnly(changes), ...(lastDiscarded ? { discarded: lastDiscarded.id } : {}) }),
  };
}

/** Only what changed is recorded: with 10,000 partitions, whole position maps made each entry ~1 MB. */
function changedOnly(changes: readonly PositionChange[]): Pick<ResetEntry, 'before' | 'after'> {
  const moved = changes.filter((c) => c.before !== c.after);
  return {
    before: Object.fromEntries(moved.flatMap((c) => (c.before === undefined ? [] : [[c.partition, c.before]]))),
    after: Object.fromEntries(moved.map((c) => [c.partition, c.after])),
  };
}

/** The meta with `entry` added and only the newest RETAIN_HISTORY resets kept, the pruned ones counted. */
export function recordReset(meta: CheckpointMeta, entry: ResetEntry): CheckpointMeta {
  const resets = [...meta.resets, entry];
  const drop = Math.max(0, resets.length - RETAIN_HISTORY);
  if (drop === 0) return { ...meta, resets };
  return { ...meta, resets: resets.slice(drop), resetsPruned: (meta.resetsPruned ?? 0) + drop };
}
