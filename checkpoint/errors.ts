// Every failure a user can meet is in the ERRORS table below: a stable `code` (for
// scripts and logs), an exit code (for the daemon) and a one-line summary. The message of
// each error names the cause and the next step; the CLI prints it without a stack trace.
//
// The table lives in checkpoint/ because checkpoint/ is the bottom layer: every layer
// reads it, it imports nothing. Each error class lives in the layer that raises it:
// the checkpoint's here, recovery's in recovery/errors.ts, the engine's, sources' and
// sinks' in src/errors.ts.

/**
 * The one table of expected failures: each error `code`, the exit status the CLI ends
 * with, and a one-line summary. Error classes take their exit code from it, `tidemark
 * --help` prints its exit-code list from it, and test/cli/error-table.test.ts holds the
 * tables in README.md and docs/cli.md to it.
 */
export const ERRORS = {
  TIDEMARK_BAD_CONFIG: { exitCode: 2, summary: 'bad configuration or usage (a flag, a variable, a job file, a job field — named)' },
  TIDEMARK_CHECKPOINT_LOCKED: { exitCode: 3, summary: 'checkpoint locked by another process (named: pid, host, since)' },
  TIDEMARK_CODE_CHANGED: { exitCode: 4, summary: 'incompatible checkpoint: the code changed with a batch in flight, or strictCodeVersion' },
  TIDEMARK_OTHER_JOB: { exitCode: 4, summary: "incompatible checkpoint: another job's (its name or source differs)" },
  TIDEMARK_NEWER_FORMAT: { exitCode: 4, summary: 'incompatible checkpoint: written in a newer on-disk format' },
  TIDEMARK_SINK_LEDGER_MISMATCH: { exitCode: 4, summary: "a sink's ledger disagrees with the checkpoint (restored, recreated, or shared)" },
  TIDEMARK_DATA_LOSS: { exitCode: 5, summary: "data loss under onDataLoss: 'fail' (offsets to process are gone from the source)" },
  TIDEMARK_SOURCE_UNREACHABLE: { exitCode: 6, summary: 'source unreachable' },
  TIDEMARK_CORRUPT_CHECKPOINT: { exitCode: 7, summary: 'corrupt checkpoint: damaged LevelDB files or records (never started from scratch silently)' },
  TIDEMARK_TRANSFORM_FAILED: { exitCode: 8, summary: "transform failed (onTransformError: 'fail')" },
  TIDEMARK_SINK_FAILED: { exitCode: 9, summary: 'sink failed after its retries (the batch stays staged and is redelivered on restart)' },
  TIDEMARK_SINK_REJECTED: { exitCode: 9, summary: "a sink rejected outputs for good, under onSinkError: 'fail' (the batch stays staged)" },
  TIDEMARK_LOCK_COMPROMISED: { exitCode: 10, summary: 'checkpoint lock lost while running' },
  TIDEMARK_SINK_FENCED: { exitCode: 10, summary: 'a sink was fenced: another process of the job took it over' },
  TIDEMARK_PARTITION_FENCED: { exitCode: 10, summary: 'group mode: a newer owner of a partition refused this write (handled by dropping the partition; exit only if it escapes)' },
  TIDEMARK_SOURCE_WENT_BACKWARDS: { exitCode: 11, summary: 'source went backwards (topic deleted or recreated)' },
  TIDEMARK_GROUP_STATE_LOST: { exitCode: 11, summary: "group mode: the consumer group lost its offsets (deleted, or expired) while the sinks hold the job's output" },
  TIDEMARK_CHECKPOINT_WRITE_FAILED: { exitCode: 12, summary: 'the checkpoint cannot be written (disk full, read-only file system); nothing is lost' },
  TIDEMARK_LOG_WRITE_FAILED: { exitCode: 12, summary: 'the embedded log cannot be written (disk full): an append keeps only whole records, nothing partial' },
  TIDEMARK_AUTH_FAILED: { exitCode: 13, summary: 'a server refused the credentials (wrong password, unknown user, wrong SASL mechanism)' },
  TIDEMARK_TLS_FAILED: { exitCode: 14, summary: "TLS failed: the server's certificate is not trusted or does not name the host, or the server refused the client's" },
  TIDEMARK_NOT_AUTHORIZED: { exitCode: 15, summary: 'a server refused an operation: a missing ACL (the topic, group or transactional id named)' },
  TIDEMARK_SOURCE_CORRUPT: { exitCode: 16, summary: 'a record batch from Kafka fails its CRC-32C (damaged on the broker or on the way): none of its records was read' },
  TIDEMARK_INVARIANT_BROKEN: { exitCode: 1, summary: 'a broken invariant of the protocol, checked before every batch write: a bug in tidemark (report it with tidemark inspect output)' },
} as const satisfies Record<string, { readonly exitCode: number; readonly summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** Exit statuses that no error code stands for. */
export const OTHER_EXITS = [
  { exitCode: 0, summary: 'ok (also after SIGTERM/SIGINT, which drain the batch in flight)' },
  { exitCode: 1, summary: 'unexpected error (a bug: run with --log-level debug and report it)' },
  { exitCode: 130, summary: 'a second SIGTERM/SIGINT (safe: the checkpoint survives any kill)' },
] as const;

export interface ExitCodeRow {
  readonly exitCode: number;
  readonly code: ErrorCode | null;
  readonly summary: string;
}

/** Every exit status, ordered by exit code (then as listed in ERRORS): the rows of the docs' and --help's tables. */
export function exitCodeRows(): ExitCodeRow[] {
  const errors = (Object.keys(ERRORS) as ErrorCode[]).map((code) => ({ exitCode: ERRORS[code].exitCode, code, summary: ERRORS[code].summary }));
  return [...OTHER_EXITS.map((e) => ({ ...e, code: null })), ...errors].sort((a, b) => a.exitCode - b.exitCode);
}

export const ExitCode = {
  ok: 0,
  unexpected: 1,
  badConfig: ERRORS.TIDEMARK_BAD_CONFIG.exitCode,
  checkpointLocked: ERRORS.TIDEMARK_CHECKPOINT_LOCKED.exitCode,
  incompatibleCheckpoint: ERRORS.TIDEMARK_CODE_CHANGED.exitCode,
  dataLoss: ERRORS.TIDEMARK_DATA_LOSS.exitCode,
  sourceUnreachable: ERRORS.TIDEMARK_SOURCE_UNREACHABLE.exitCode,
  corruptCheckpoint: ERRORS.TIDEMARK_CORRUPT_CHECKPOINT.exitCode,
  transformFailed: ERRORS.TIDEMARK_TRANSFORM_FAILED.exitCode,
  sinkFailed: ERRORS.TIDEMARK_SINK_FAILED.exitCode,
  lockCompromised: ERRORS.TIDEMARK_LOCK_COMPROMISED.exitCode,
  sourceWentBackwards: ERRORS.TIDEMARK_SOURCE_WENT_BACKWARDS.exitCode,
  checkpointWriteFailed: ERRORS.TIDEMARK_CHECKPOINT_WRITE_FAILED.exitCode,
  interrupted: 130,
} as const;

export class TidemarkError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = ERRORS[code].exitCode;
  }
}

/** True for the errors this file defines, whichever copy of the module threw them. */
export function isTidemarkError(err: unknown): err is TidemarkError {
  return err instanceof Error && typeof (err as Partial<TidemarkError>).code === 'string'
    && (err as TidemarkError).code.startsWith('TIDEMARK_') && typeof (err as TidemarkError).exitCode === 'number';
}

export class BadConfigError extends TidemarkError {
  constructor(message: string) {
    super('TIDEMARK_BAD_CONFIG', message);
  }
}

export class CheckpointLockedError extends TidemarkError {
  /**
   * `unverifiable`: the owner cannot be checked from here (why), so whether it still runs
   * is for a human to find out; the message names the lock file to remove once checked.
   */
  constructor(dir: string, owner: string, unverifiable?: { readonly why: string; readonly lockFile: string }) {
    super('TIDEMARK_CHECKPOINT_LOCKED', unverifiable
      ? `Checkpoint ${dir} is locked by another process (${owner}) that cannot be checked from here: ${unverifiable.why}. ` +
        `Only one process may run a checkpoint: wait for it to stop; or, once you have checked that it no longer runs, remove ${unverifiable.lockFile} by hand and start again.`
      : `Checkpoint ${dir} is locked by another process (${owner}). ` +
        'Only one process may run a checkpoint: stop the other one (SIGTERM drains it), or use another --checkpoint directory.');
  }
}

export class LockCompromisedError extends TidemarkError {
  constructor(dir: string, reason: string) {
    super('TIDEMARK_LOCK_COMPROMISED',
      `Lost the lock on checkpoint ${dir} (${reason}); stopped before the next write so two processes never write one checkpoint. ` +
      'Check that no other process runs this checkpoint, then restart.');
  }
}

export class CorruptCheckpointError extends TidemarkError {
  /** What is damaged, without the advice around it (`tidemark inspect` lists these). */
  readonly detail: string;
  constructor(dir: string, detail: string, options?: { cause?: unknown }) {
    super('TIDEMARK_CORRUPT_CHECKPOINT',
      `Checkpoint ${dir} is damaged (${detail}). Nothing was written. ` +
      `Look at it with \`tidemark inspect ${dir}\`. ${CorruptCheckpointError.wayOn(dir)}`,
      options);
    this.detail = detail;
  }

  /**
   * The way on from a damaged checkpoint, for this error and for `tidemark inspect`. Not
   * `tidemark reset` on it: reset opens the checkpoint like run does and meets the same damage.
   */
  static wayOn(dir: string): string {
    return 'tidemark does not repair LevelDB files: restore the directory from a backup, or move it aside and start a new checkpoint ' +
      `at the positions it held (tidemark inspect ${dir} shows what can still be read): ` +
      '`tidemark reset <new dir> --to offsets.json --job <job.ts> --yes`, then run with --checkpoint <new dir> ' +
      "(with a new directory or name for a file sink: the new checkpoint's batch ids start again at 1).";
  }
}

export class CheckpointWriteError extends TidemarkError {
  /** Why a write failed, in words: a full disk by name, anything else as the OS said it. */
  static reason(cause: unknown): string {
    return /no space left|ENOSPC/i.test(describeCause(cause)) ? 'no space left on the device' : describeCause(cause);
  }

  constructor(dir: string, cause: unknown) {
    const reason = CheckpointWriteError.reason(cause);
    super('TIDEMARK_CHECKPOINT_WRITE_FAILED',
      `Could not write checkpoint ${dir}: ${reason}. Nothing was lost: the batch in flight is retried from the checkpoint on restart. ` +
      'Free space or make the directory writable (or fix the disk), then start again.', { cause });
  }
}

/**
 * A runtime assertion of the protocol failed (checkpoint/invariants.ts): a bug in tidemark,
 * not a condition to handle. Nothing retries it; the run stops with exit code 1.
 */
export class InvariantError extends TidemarkError {
  /** `dir`: the checkpoint directory, undefined where it is not known (a sink). */
  constructor(dir: string | undefined, detail: string) {
    super('TIDEMARK_INVARIANT_BROKEN',
      `invariant broken: ${detail}; this is a bug in tidemark — please report it with \`tidemark inspect ${dir ?? "<the job's checkpoint directory>"}\` output. ` +
      'Nothing was written by the step that found it.');
  }
}

/** An error and the causes it wraps, outermost first: at most `max` objects, no cycle followed. */
export function causes(err: unknown, max = 10): object[] {
  const chain: object[] = [];
  for (let e: unknown = err; typeof e === 'object' && e !== null && chain.length < max && !chain.includes(e); e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}


/** An error's message with its causes (LevelDB nests the OS error). */
export function describeCause(err: unknown): string {
  const parts: string[] = [];
  for (const e of causes(err)) {
    if (!(e instanceof Error)) break;
    parts.push(e.message);
  }
  return parts.length > 0 ? parts.join(': ') : String(err);
}
