// The errors the recovery decision raises (their codes and exit codes: checkpoint/errors.ts).
import { TidemarkError } from '../checkpoint/errors';

export class CodeChangedError extends TidemarkError {
  constructor(message: string) {
    super('TIDEMARK_CODE_CHANGED', message);
  }
}

export class NewerFormatError extends TidemarkError {
  constructor(dir: string, found: number, supported: number) {
    super('TIDEMARK_NEWER_FORMAT',
      `Checkpoint ${dir} was written in format ${found}; this build of tidemark understands format ${supported} and older. ` +
      'Run it with the newer tidemark that wrote it.');
  }
}

export class OtherJobError extends TidemarkError {
  constructor(dir: string, what: string, stored: string, current: string) {
    super('TIDEMARK_OTHER_JOB',
      `Checkpoint ${dir} belongs to another job: its ${what} is ${stored}, this job's is ${current}. ` +
      'Use the checkpoint directory of this job, or a new one to start from scratch.');
  }
}

export class DataLossError extends TidemarkError {
  constructor(readonly lost: ReadonlyArray<{ topic: string; partition: number; from: number; until: number }>) {
    super('TIDEMARK_DATA_LOSS',
      `Offsets to process are no longer in the source (deleted by retention?): ${lost.map((r) => `${r.topic}/${r.partition} [${r.from}, ${r.until})`).join(', ')}. ` +
      "Nothing was skipped. To accept the loss and go on from the earliest offset, set onDataLoss: 'skip' (the loss is recorded in the checkpoint).");
  }
}
