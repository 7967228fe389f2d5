// decideRecovery: what to do with a checkpoint at start, as a pure function.
//
//   checkpoint + current fingerprint + source offsets →
//     { resumeAt, redeliver?: staged batch, rerun?: planned batch, meta to record } | a typed error
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
  /** Earliest offsets of the in-flight batch's partitions (only read when it must be re-run). */
  readonly earliest: OffsetMap;
  /** The on-disk format this build understands. */
  readonly format: number;
  readonly now: number;
  /** The id a checkpoint without one gets (the engine gives a random UUID; without it none is given). */
  readonly newId?: string;
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
  readonly notes: readonly string[];
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

export function decideRecovery(input: RecoveryInput): RecoveryDecision {
  const { view, job, fingerprint, dir, now } = input;
  const meta = view.meta;
  if (meta === undefined) {
    return {
      meta: {
        format: input.format, ...(input.newId !== undefined ? { id: input.newId } : {}), job: job.name, source: job.sourceId, sinks: [...job.sinks], fingerprint,
        fingerprints: [{ fingerprint, since: now, note: 'first run' }], resets: [], createdAt: now,
      },
      resumeAt: {}, lastCommitted: 0, notes: ['new checkpoint'],
    };
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
        `${what} Batch ${inFlight.id} is in flight (${inFlight.state}, ranges ${describeRanges(inFlight.ranges)}), ` +
        'and the new code cannot safely continue it. Ways on:\n' +
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

  const id = meta.id ?? input.newId;
  const newMeta: CheckpointMeta | undefined = note === undefined && id === meta.id ? undefined : {
    ...meta,
    ...(id !== undefined ? { id } : {}),
    sinks: [...job.sinks],
    fingerprint,
    fingerprints: codeChanged && note !== undefined ? [...meta.fingerprints, { fingerprint, since: now, note }] : meta.fingerprints,
  };
  const base = { meta: newMeta, resumeAt: view.positions, lastCommitted: view.lastCommitted, notes };

  if (!inFlight) return base;
  if (hasStagedOutputs(inFlight)) {
    notes.push(`batch ${inFlight.id} was staged: delivering its staged outputs again`);
    return { ...base, redeliver: inFlight };
  }

  // Re-run with exactly the recorded ranges; only data the source no longer has is cut off.
  const lost: Range[] = [];
  const ranges = inFlight.ranges.map((r) => {
    const earliest = input.earliest[partitionKey(r)] ?? 0;
    if (r.from >= earliest || r.from === r.until) return r;
    const cut = Math.min(earliest, r.until);
    lost.push({ ...r, until: cut });
    return { ...r, from: cut };
  });
  if (lost.length > 0 && job.onDataLoss === 'fail') throw new DataLossError(lost);
  notes.push(`batch ${inFlight.id} was planned: running it again with its recorded ranges ${describeRanges(inFlight.ranges)}`);
  return { ...base, rerun: { ...inFlight, state: 'planned', ranges, lost: [...(inFlight.lost ?? []), ...lost] } };
}
