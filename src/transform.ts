// Running the job's transform over a batch, and finding the poison record when it throws.
//
// The transform works on a whole batch (aggregations need that), so an error does not
// say which record caused it. The engine then bisects: it runs the transform on halves
// of the batch until single records that throw on their own are found. Those are named
// in the error (`fail`) or routed to the dead-letter sink (`dead-letter`), and the batch's
// outputs are the transform of the remaining records.
import { sketch, unfaithful } from '../checkpoint/faithful';
import { TransformError } from './errors';
import type { BatchContext, DeadLetter, RejectedOutput, SourceRecord } from './contracts';
import type { Job } from './job';

export interface TransformResult<T> {
  readonly outputs: T[];
  /** Records the transform failed on, and outputs the staging codec refused (`sink: '(stage)'`). */
  readonly deadLetters: Array<DeadLetter | RejectedOutput>;
}

/** The `sink` of a dead letter for an output refused at stage time (no sink name has parentheses). */
const STAGE = '(stage)';

const where = (r: SourceRecord): string => `${r.topic}/${r.partition} offset ${r.offset}`;

async function attempt<T>(job: Job<T>, records: SourceRecord[], ctx: BatchContext): Promise<{ ok: true; outputs: T[] } | { ok: false; error: unknown }> {
  try {
    const outputs = await job.transform(records, ctx);
    if (!Array.isArray(outputs)) return { ok: false, error: new TypeError(`the transform returned ${typeof outputs}, not an array of outputs`) };
    return { ok: true, outputs };
  } catch (error) {
    return { ok: false, error };
  }
}

async function isolate<T>(job: Job<T>, records: SourceRecord[], ctx: BatchContext, found: Array<{ record: SourceRecord; error: unknown }>): Promise<void> {
  if (records.length === 1) {
    const result = await attempt(job, records, ctx);
    if (!result.ok) found.push({ record: records[0]!, error: result.error });
    return;
  }
  const mid = records.length >> 1;
  for (const half of [records.slice(0, mid), records.slice(mid)]) {
    const result = await attempt(job, half, ctx);
    if (!result.ok) await isolate(job, half, ctx, found);
  }
}

const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8'));

export async function runTransform<T>(job: Job<T>, records: SourceRecord[], ctx: BatchContext): Promise<TransformResult<T>> {
  const first = await attempt(job, records, ctx);
  if (first.ok) return { outputs: first.outputs, deadLetters: [] };
  if (records.length === 0) throw new TransformError(ctx.batchId, 'an empty batch', first.error);

  const poison: Array<{ record: SourceRecord; error: unknown }> = [];
  await isolate(job, records, ctx, poison);
  if (poison.length === 0) throw new TransformError(ctx.batchId, 'the batch as a whole (no single record fails alone)', first.error);
  if (job.onTransformError === 'fail') throw new TransformError(ctx.batchId, where(poison[0]!.record), poison[0]!.error);

  const bad = new Set(poison.map((p) => p.record));
  const rest = await attempt(job, records.filter((r) => !bad.has(r)), ctx);
  if (!rest.ok) throw new TransformError(ctx.batchId, 'the batch without its failing records', rest.error);
  return {
    outputs: rest.outputs,
    deadLetters: poison.map(({ record, error }) => ({
      topic: record.topic, partition: record.partition, offset: record.offset,
      key: text(record.key), value: text(record.value),
      error: error instanceof Error ? error.message : String(error), batchId: ctx.batchId,
    })),
  };
}

/**
 * The result without the outputs the staging codec cannot give back unchanged (a function,
 * a class instance: checkpoint/faithful.ts), called when staging refused one. Under
 * onTransformError 'fail' the first is a TransformError naming the batch and the output;
 * under 'dead-letter' each goes to the dead-letter sink as its description (the value
 * itself cannot be staged) and the rest is staged.
 */
export function setAsideUnstageable<T>(job: Job<T>, result: TransformResult<T>, batchId: number): TransformResult<T> {
  const outputs: T[] = [];
  const refused: Array<{ index: number; output: T; what: string }> = [];
  result.outputs.forEach((output, index) => {
    const what = unfaithful(output);
    if (what === undefined) outputs.push(output);
    else refused.push({ index, output, what });
  });
  const first = refused[0];
  if (first === undefined) return result;
  if (job.onTransformError === 'fail') {
    throw new TransformError(batchId, `output #${first.index} of ${result.outputs.length}`,
      new Error(`${first.what}; it cannot be staged as it is, so a redelivery would hand sinks a different value`));
  }
  return {
    outputs,
    deadLetters: [...result.deadLetters, ...refused.map(({ index, output, what }): RejectedOutput => ({
      sink: STAGE, batchId, index, output: sketch(output), error: `it cannot be staged: ${what}`,
    }))],
  };
}
