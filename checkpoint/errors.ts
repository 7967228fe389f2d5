// Every failure a user can meet, in one place. Each has a stable `code` (for scripts
// and logs) and an `exitCode` (for the daemon). The message names the cause and the
// next step; the CLI prints it without a stack trace.
//
// This file lives in checkpoint/ because checkpoint/ is the bottom layer: recovery/
// and src/ import it, it imports nothing.

export const ExitCode = {
  ok: 0,
  unexpected: 1,
  badConfig: 2,
  checkpointLocked: 3,
  incompatibleCheckpoint: 4,
  dataLoss: 5,
  sourceUnreachable: 6,
  corruptCheckpoint: 7,
  transformFailed: 8,
  sinkFailed: 9,
  lockCompromised: 10,
  sourceWentBackwards: 11,
  checkpointWriteFailed: 12,
  interrupted: 130,
} as const;

export type ErrorCode =
  | 'TIDEMARK_BAD_CONFIG'
  | 'TIDEMARK_CHECKPOINT_LOCKED'
  | 'TIDEMARK_LOCK_COMPROMISED'
  | 'TIDEMARK_CODE_CHANGED'
  | 'TIDEMARK_NEWER_FORMAT'
  | 'TIDEMARK_OTHER_JOB'
  | 'TIDEMARK_CORRUPT_CHECKPOINT'
  | 'TIDEMARK_CHECKPOINT_WRITE_FAILED'
  | 'TIDEMARK_LOG_WRITE_FAILED'
  | 'TIDEMARK_DATA_LOSS'
  | 'TIDEMARK_SOURCE_WENT_BACKWARDS'
  | 'TIDEMARK_SOURCE_UNREACHABLE'
  | 'TIDEMARK_TRANSFORM_FAILED'
  | 'TIDEMARK_SINK_FAILED'
  | 'TIDEMARK_SINK_REJECTED'
  | 'TIDEMARK_SINK_LEDGER_MISMATCH'
  | 'TIDEMARK_SINK_FENCED';

export class TidemarkError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  constructor(code: ErrorCode, exitCode: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** True for the errors this file defines, whichever copy of the module threw them. */
export function isTidemarkError(err: unknown): err is TidemarkError {
  return err instanceof Error && typeof (err as Partial<TidemarkError>).code === 'string'
    && (err as TidemarkError).code.startsWith('TIDEMARK_') && typeof (err as TidemarkError).exitCode === 'number';
}

export class BadConfigError extends TidemarkError {
  constructor(message: string) {
    super('TIDEMARK_BAD_CONFIG', ExitCode.badConfig, message);
  }
}

export class CheckpointLockedError extends TidemarkError {
  constructor(dir: string, owner: string) {
    super('TIDEMARK_CHECKPOINT_LOCKED', ExitCode.checkpointLocked,
      `Checkpoint ${dir} is locked by another process (${owner}). ` +
      'Only one process may run a checkpoint: stop the other one (SIGTERM drains it), or use another --checkpoint directory.');
  }
}

export class LockCompromisedError extends TidemarkError {
  constructor(dir: string, reason: string) {
    super('TIDEMARK_LOCK_COMPROMISED', ExitCode.lockCompromised,
      `Lost the lock on checkpoint ${dir} (${reason}); stopped before the next write so two processes never write one checkpoint. ` +
      'Check that no other process runs this checkpoint, then restart.');
  }
}

export class CodeChangedError extends TidemarkError {
  constructor(message: string) {
    super('TIDEMARK_CODE_CHANGED', ExitCode.incompatibleCheckpoint, message);
  }
}

export class NewerFormatError extends TidemarkError {
  constructor(dir: string, found: number, supported: number) {
    super('TIDEMARK_NEWER_FORMAT', ExitCode.incompatibleCheckpoint,
      `Checkpoint ${dir} was written in format ${found}; this build of tidemark understands format ${supported} and older. ` +
      'Run it with the newer tidemark that wrote it.');
  }
}

export class OtherJobError extends TidemarkError {
  constructor(dir: string, what: string, stored: string, current: string) {
    super('TIDEMARK_OTHER_JOB', ExitCode.incompatibleCheckpoint,
      `Checkpoint ${dir} belongs to another job: its ${what} is ${stored}, this job's is ${current}. ` +
      'Use the checkpoint directory of this job, or a new one to start from scratch.');
  }
}

export class CorruptCheckpointError extends TidemarkError {
  /** What is damaged, without the advice around it (`tidemark inspect` lists these). */
  readonly detail: string;
  constructor(dir: string, detail: string, options?: { cause?: unknown }) {
    super('TIDEMARK_CORRUPT_CHECKPOINT', ExitCode.corruptCheckpoint,
      `Checkpoint ${dir} is damaged (${detail}). Nothing was written. ` +
      `Look at it with \`tidemark inspect ${dir}\`; restore it from a backup, or repair it deliberately with \`tidemark reset\`.`,
      options);
    this.detail = detail;
  }
}

export class CheckpointWriteError extends TidemarkError {
  constructor(dir: string, cause: unknown) {
    const reason = writeFailureReason(cause);
    super('TIDEMARK_CHECKPOINT_WRITE_FAILED', ExitCode.checkpointWriteFailed,
      `Could not write checkpoint ${dir}: ${reason}. Nothing was lost: the batch in flight is retried from the checkpoint on restart. ` +
      'Free space (or fix the disk), then start again.', { cause });
  }
}

/** An embedded-log append that could not be written whole. `appended` holds the offset of each record that was written durably (by its index in the append), `undefined` for the others, which are not in the log. */
export class LogWriteError extends TidemarkError {
  constructor(dir: string, cause: unknown, readonly appended: ReadonlyArray<{ partition: number; offset: number } | undefined>) {
    const reason = writeFailureReason(cause);
    const written = appended.filter((a) => a !== undefined).length;
    super('TIDEMARK_LOG_WRITE_FAILED', ExitCode.checkpointWriteFailed,
      `Could not append to the embedded log ${dir}: ${reason}. ${written} of ${appended.length} records were appended (whole partitions, in order); the rest were not written, and the log holds no part of them. ` +
      'Free space (or fix the disk), then append the rest again.', { cause });
  }
}

/** Why a write failed, in words: a full disk by name, anything else as the OS said it. */
function writeFailureReason(cause: unknown): string {
  return /no space left|ENOSPC/i.test(describeCause(cause)) ? 'no space left on the device' : describeCause(cause);
}

/** An error's message with its causes (LevelDB nests the OS error). */
export function describeCause(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = (e as Error & { cause?: unknown }).cause) parts.push(e.message);
  return parts.length > 0 ? parts.join(': ') : String(err);
}

export class DataLossError extends TidemarkError {
  constructor(readonly lost: ReadonlyArray<{ topic: string; partition: number; from: number; until: number }>) {
    super('TIDEMARK_DATA_LOSS', ExitCode.dataLoss,
      `Offsets to process are no longer in the source (deleted by retention?): ${lost.map((r) => `${r.topic}/${r.partition} [${r.from}, ${r.until})`).join(', ')}. ` +
      "Nothing was skipped. To accept the loss and go on from the earliest offset, set onDataLoss: 'skip' (the loss is recorded in the checkpoint).");
  }
}

export class SourceWentBackwardsError extends TidemarkError {
  constructor(topic: string, partition: number, position: number, latest: number) {
    super('TIDEMARK_SOURCE_WENT_BACKWARDS', ExitCode.sourceWentBackwards,
      `${topic}/${partition} now ends at offset ${latest}, below the checkpoint's position ${position}: the topic was deleted or recreated. ` +
      'tidemark never resets silently: if this is intended, move the positions with `tidemark reset`.');
  }
}

export class SourceUnreachableError extends TidemarkError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('TIDEMARK_SOURCE_UNREACHABLE', ExitCode.sourceUnreachable,
      `${what}. Check that the source is running and reachable, then restart.`, options);
  }
}

export class TransformError extends TidemarkError {
  constructor(batchId: number, where: string, cause: unknown) {
    super('TIDEMARK_TRANSFORM_FAILED', ExitCode.transformFailed,
      `The transform failed in batch ${batchId} at ${where}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
      "Fix the transform (the batch will be re-run exactly), or set onTransformError: 'dead-letter' to route failing records to a sink.",
      { cause });
  }
}

export class SinkError extends TidemarkError {
  constructor(sink: string, batchId: number, cause: unknown) {
    super('TIDEMARK_SINK_FAILED', ExitCode.sinkFailed,
      `Sink ${sink} failed to write batch ${batchId}: ${cause instanceof Error ? cause.message : String(cause)}. ` +
      'The batch stays staged and is delivered again on restart; nothing is lost.',
      { cause });
  }
}

/** One output a sink refuses permanently; `index` is its position in the outputs it was given. */
export interface RejectedRow {
  readonly index: number;
  readonly output: unknown;
  readonly reason: string;
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * Thrown by a sink for outputs it can never write (a constraint violation, a value the
 * destination refuses), having written nothing of the batch. Never retried: the job's
 * `onSinkError` decides (`fail`: stop with this message; `dead-letter`: route these
 * outputs to the dead-letter sink and write the rest).
 */
export class SinkRejectedError extends TidemarkError {
  constructor(readonly sink: string, readonly batchId: number, readonly rejected: readonly RejectedRow[], options?: { cause?: unknown }) {
    const first = rejected[0];
    const more = rejected.length > 1 ? ` (and ${rejected.length - 1} more)` : '';
    super('TIDEMARK_SINK_REJECTED', ExitCode.sinkFailed,
      `Sink ${sink} rejected batch ${batchId}: output #${first?.index ?? '?'} ${preview(first?.output)}: ${first?.reason ?? 'no reason given'}${more}. ` +
      'Nothing of the batch was written; it stays staged and is delivered again on restart. Fix the destination (or the transform and reset), ' +
      "or set onSinkError: 'dead-letter' to route rejected outputs to the dead-letter sink and write the rest.",
      options);
  }
}

/** A sink's own record of delivered batches disagrees with the checkpoint (recreated, restored, or shared with another job). */
export class SinkLedgerMismatchError extends TidemarkError {
  constructor(sink: string, batchId: number, detail: string) {
    super('TIDEMARK_SINK_LEDGER_MISMATCH', ExitCode.incompatibleCheckpoint,
      `Sink ${sink} cannot take batch ${batchId}: ${detail}. The checkpoint does not match what the sink already holds ` +
      '(was the checkpoint deleted, restored from a backup, or is another job writing with the same job and sink names?). ' +
      'Nothing was written. Use the checkpoint that wrote the sink, or give the job or the sink a new name to start over.');
  }
}

/** Another process took over the sink (a Kafka producer with the same transactionalId): this one is a zombie and stops. */
export class SinkFencedError extends TidemarkError {
  constructor(sink: string, batchId: number, detail: string, options?: { cause?: unknown }) {
    super('TIDEMARK_SINK_FENCED', ExitCode.lockCompromised,
      `Sink ${sink} was fenced while writing batch ${batchId}: ${detail}. Another process of this job has taken over the sink; ` +
      'nothing of this batch became visible from this process, which stops. Check that only one process runs the job.',
      options);
  }
}
