// decideRecovery: what to do with a checkpoint at start, as a pure function.
//
//   checkpoint + current fingerprint + source offsets →
//     { resumeAt, redeliver?: staged batch, rerun?: planned batch, later: the batches in
//       flight after it, meta to record } | a typed error
//
// The engine then executes the decision through the ordinary batch path.
import {
  CodeChangedError, DataLossError, NewerFormatError, OtherJobError,
} from './errors';
import {
  partitionKey, type BatchRecord, type CheckpointMeta, type CheckpointView, type OffsetMap, type Range,
} from '../checkpoint/model';

export interface JobIdentity {
  readonly name: string;
  readonly sourceId: string;
  readonly sinks: readonly string[];
  readonly strictCodeVersion: boolean;
  readonly onDataLoss: 'fail' | 'skip';
}

export interface RecoveryInput {
  readonly dir: string;
  readonly view: CheckpointView;
  readonly job: JobIdentity;
  readonly fingerprint: string;
  readonly acceptCodeChange: boolean;
  /** Earliest offsets of the in-flight batches' partitions (only read when one must be re-run). */
  readonly earliest: OffsetMap;
  /** The on-disk format this build understands. */
  readonly format: number;
  readonly now: number;
  /** A new random id, recorded when the checkpoint has none yet (meta.checkpointId). */
  readonly checkpointId?: string;
}

export interface RecoveryDecision {
  /** The meta to write before anything else, or undefined when it is unchanged. */
  readonly meta: CheckpointMeta | undefined;
  readonly resumeAt: OffsetMap;
  readonly lastCommitted: number;
  /** A staged batch: deliver its staged outputs again, then commit. */
  readonly redeliver?: BatchRecord;
  /** A planned batch (or staged without outputs): run again with exactly its recorded ranges. */
  readonly rerun?: BatchRecord;
  /**
   * The batches in flight after that one (pipelining, DESIGN.md), in id order, each to be
   * carried through after it the same way: staged with outputs → delivered again, else re-run.
   */
  readonly later: readonly BatchRecord[];
  readonly notes: readonly string[];
}

/** "Batch 8 is in flight (staged, ranges …)", or with batches pipelined "Batches 8 and 9 are in flight (8 staged, ranges …; 9 planned, ranges …)". */
export function describeFlight(flight: readonly BatchRecord[]): string {
  if (flight.length === 1) return `Batch ${flight[0]!.id} is in flight (${flight[0]!.state}, ranges ${describeRanges(flight[0]!.ranges)})`;
  const ids = flight.map((b) => b.id);
  return `Batches ${ids.slice(0, -1).join(', ')} and ${ids[ids.length - 1]} are in flight (${flight.map((b) => `${b.id} ${b.state}, ranges ${describeRanges(b.ranges)}`).join('; ')})`;
}

export function describeRanges(ranges: readonly Range[]): string {
  return ranges.length === 0 ? '(no ranges)' : ranges.map((r) => `${partitionKey(r)} [${r.from}, ${r.until})`).join(', ');
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

/**
 * The one identity check, for recovery and for `tidemark reset`: the checkpoint is in a
 * format this build reads and, when a job is given, belongs to it (same name, same source).
 */
export function checkIdentity(dir: string, meta: CheckpointMeta, format: number, job?: Pick<JobIdentity, 'name' | 'sourceId'>): void {
  if (meta.format > format) throw new NewerFormatError(dir, meta.format, format);
  if (job && meta.job !== job.name) throw new OtherJobError(dir, 'job name', meta.job, job.name);
  if (job && meta.source !== job.sourceId) throw new OtherJobError(dir, 'source', meta.source, job.sourceId);
}

/** Staged outputs can be delivered as they are; anything else is computed from its ranges. */
export const hasStagedOutputs = (b: BatchRecord): boolean => b.state === 'staged' && b.stagedChunks !== undefined;

/** The meta of a new checkpoint: written by its first run, or by a `tidemark reset` that starts it at given positions. */
export function firstMeta(
  job: Pick<JobIdentity, 'name' | 'sourceId' | 'sinks'>, fingerprint: string, format: number, now: number, checkpointId: string | undefined, note = 'first run',
): CheckpointMeta {
  return {
    format, job: job.name, source: job.sourceId, sinks: [...job.sinks], fingerprint,
    fingerprints: [{ fingerprint, since: now, note }], resets: [], createdAt: now, ...(checkpointId !== undefined ? { checkpointId } : {}),
  };
}

export function decideRecovery(input: RecoveryInput): RecoveryDecision {
  const { view, job, fingerprint, dir, now } = input;
  const meta = view.meta;
  if (meta === undefined) {
    return { meta: firstMeta(job, fingerprint, input.format, now, input.checkpointId), resumeAt: {}, lastCommitted: 0, later: [], notes: ['new checkpoint'] };
  }
  checkIdentity(dir, meta, input.format, job);

  const inFlight = view.inFlight;
  const notes: string[] = [];
  const codeChanged = meta.fingerprint !== fingerprint;
  const sinksChanged = !sameSet(meta.sinks, job.sinks);
  let note: string | undefined;

  if (codeChanged || sinksChanged) {
    const what = codeChanged
      ? `The job's code changed: the checkpoint was written by ${meta.fingerprint}, this code is ${fingerprint}.`
      : `The job's sinks changed: the checkpoint has ${meta.sinks.join(', ')}, this job has ${job.sinks.join(', ')}.`;
    if (inFlight && !input.acceptCodeChange) {
      throw new CodeChangedError(
        `${what} ${describeFlight(view.flight)}, and the new code cannot safely continue ${view.flight.length > 1 ? 'them' : 'it'}. Ways on:\n` +
        '  1. finish it with the old code: run the old version again and stop it with SIGTERM (it drains the batch), then start the new one;\n' +
        '  2. accept the change: start with --accept-code-change (staged outputs are delivered as staged, planned ranges are recomputed by the new code);\n' +
        `  3. reset the positions: tidemark reset ${dir} --discard-in-flight --to <earliest|latest|offsets.json> --yes.`,
      );
    }
    if (!inFlight && job.strictCodeVersion && codeChanged && !input.acceptCodeChange) {
      throw new CodeChangedError(
        `${what} The job sets strictCodeVersion, so a checkpoint is only continued by the code that wrote it. ` +
        `Start with --accept-code-change to continue from the committed positions, set codeVersion to declare the versions compatible, or use a new checkpoint directory.`,
      );
    }
    note = inFlight || (job.strictCodeVersion && codeChanged) ? 'accepted with --accept-code-change' : (codeChanged ? 'code change, nothing in flight' : 'sinks changed, nothing in flight');
    notes.push(`${what} Continuing: ${note}.`);
  }

  const addId = meta.checkpointId === undefined && input.checkpointId !== undefined;
  const newMeta: CheckpointMeta | undefined = note === undefined && !addId ? undefined : {
    ...meta,
    sinks: [...job.sinks],
    fingerprint,
    fingerprints: codeChanged && note !== undefined ? [...meta.fingerprints, { fingerprint, since: now, note }] : meta.fingerprints,
    ...(addId ? { checkpointId: input.checkpointId } : {}),
  };
  const base = { meta: newMeta, resumeAt: view.positions, lastCommitted: view.lastCommitted, notes };

  const flight = view.flight.map((b) => recoverBatch(b, input.earliest, job.onDataLoss, notes));
  const first = flight[0];
  if (!first) return { ...base, later: [] };
  return { ...base, ...(hasStagedOutputs(first) ? { redeliver: first } : { rerun: first }), later: flight.slice(1) };
}

/** A batch found in flight, as it is carried on: staged with outputs as it is, else re-run with exactly its recorded ranges. */
function recoverBatch(batch: BatchRecord, earliestOffsets: OffsetMap, onDataLoss: 'fail' | 'skip', notes: string[]): BatchRecord {
  if (hasStagedOutputs(batch)) {
    notes.push(`batch ${batch.id} was staged: delivering its staged outputs again`);
    return batch;
  }
  // Only data the source no longer has is cut off.
  const lost: Range[] = [];
  const ranges = batch.ranges.map((r) => {
    const earliest = earliestOffsets[partitionKey(r)] ?? 0;
    if (r.from >= earliest || r.from === r.until) return r;
    const cut = Math.min(earliest, r.until);
    lost.push({ ...r, until: cut });
    return { ...r, from: cut };
  });
  if (lost.length > 0 && onDataLoss === 'fail') throw new DataLossError(lost);
  notes.push(`batch ${batch.id} was planned: running it again with its recorded ranges ${describeRanges(batch.ranges)}`);
  return { ...batch, state: 'planned', ranges, lost: [...(batch.lost ?? []), ...lost] };
}
