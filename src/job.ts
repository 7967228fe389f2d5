// defineJob: the job API, validated once so the engine can trust it.
import { BadConfigError } from '../checkpoint/errors';
import { isWholeNumber, MAX_IN_FLIGHT } from '../checkpoint/model';
import type { BatchContext, DeadLetter, RejectedOutput, Sink, Source, SourceRecord } from './contracts';
import type { PlanLimits } from './planner';

export interface BatchOptions extends Partial<PlanLimits> {
  /**
   * How often an idle job looks for new records (default 200 ms). A source with
   * `waitForData` (Kafka) wakes it sooner, as soon as records arrive.
   */
  readonly pollIntervalMs?: number;
  /**
   * The processing time (ms) to size batches for: each batch is sized from the records/s
   * measured so far so that its time approaches this (src/batch-size.ts), within the limits
   * above and the memory. Unset (default): batches fill up to the limits.
   */
  readonly targetMs?: number;
  /**
   * Batches in flight at once (default 2): batch N+1 is planned, read, transformed and
   * staged while N is delivered and committed (DESIGN.md "Pipelining"). 1: one batch at a
   * time. Group mode pipelines across distinct partitions only (docs/scale-out.md).
   */
  readonly maxInFlight?: number;
}

export interface JobDefinition<T> {
  /** Stable; stored in the checkpoint so a checkpoint is never continued by another job. */
  readonly name: string;
  readonly source: Source;
  readonly sinks: ReadonlyArray<Sink<T>>;
  /** Turns one batch of records into outputs. May be non-deterministic: staged outputs make it exactly-once anyway. */
  readonly transform: (records: SourceRecord[], context: BatchContext) => T[] | Promise<T[]>;
  readonly batch?: BatchOptions;
  readonly checkpoint?: {
    /** Default for `--checkpoint`. */
    readonly dir?: string;
    /** Committed batch records kept for `inspect` (default 100). */
    readonly retainBatches?: number;
  };
  /** Write outputs to the checkpoint before delivery (default true). `false` only for deterministic transforms: replay recomputes. */
  readonly stageOutputs?: boolean;
  /** `fail` (default): stop, naming the record; `dead-letter`: route failing records to `deadLetterSink`. */
  readonly onTransformError?: 'fail' | 'dead-letter';
  /**
   * When a sink rejects outputs permanently (`SinkRejectedError`, e.g. a constraint violation):
   * `fail` (default): stop, naming the batch and the output (the batch stays staged);
   * `dead-letter`: route the rejected outputs to `deadLetterSink` and write the rest.
   */
  readonly onSinkError?: 'fail' | 'dead-letter';
  /** Receives records the transform failed on (`DeadLetter`) and outputs sinks rejected (`RejectedOutput`). */
  readonly deadLetterSink?: Sink<DeadLetter | RejectedOutput>;
  /** When offsets to process were deleted from the source: `fail` (default) or `skip` (recorded as lost). */
  readonly onDataLoss?: 'fail' | 'skip';
  /** Declares compatibility by hand: used instead of the code hash as the fingerprint. */
  readonly codeVersion?: string;
  /** Reject a changed fingerprint even when nothing is in flight. */
  readonly strictCodeVersion?: boolean;
  /** Attempts per sink write before the batch fails (default 5, with backoff). */
  readonly sinkAttempts?: number;
  /**
   * `single` (default): one daemon owns the job. `group`: run the job N times, each with its
   * own checkpoint; the job's Kafka consumer group spreads the partitions over them
   * (docs/scale-out.md). Kafka source only. In group mode a batch holds one partition's range:
   * the transform sees one partition's records per call.
   */
  readonly scaleOut?: 'single' | 'group';
  /**
   * Group mode: added to the group generation to make an owner's epoch (default 0). Raised only
   * after the group's state was lost (GroupStateLostError names the value): a new group's
   * generations start again at 1, below the epochs the sinks' ledgers hold.
   */
  readonly groupEpochBase?: number;
}

/** A validated job with every default filled in. */
export interface Job<T> {
  readonly kind: 'tidemark.job';
  readonly name: string;
  readonly source: Source;
  readonly sinks: ReadonlyArray<Sink<T>>;
  readonly transform: JobDefinition<T>['transform'];
  readonly limits: PlanLimits;
  readonly pollIntervalMs: number;
  /** batch.targetMs: undefined sizes batches by the limits only. */
  readonly targetMs: number | undefined;
  /** batch.maxInFlight: batches pipelined at once (1 to MAX_IN_FLIGHT). */
  readonly maxInFlight: number;
  readonly checkpointDir: string | undefined;
  readonly retainBatches: number;
  readonly stageOutputs: boolean;
  readonly onTransformError: 'fail' | 'dead-letter';
  readonly onSinkError: 'fail' | 'dead-letter';
  readonly deadLetterSink: Sink<DeadLetter | RejectedOutput> | undefined;
  readonly onDataLoss: 'fail' | 'skip';
  readonly codeVersion: string | undefined;
  readonly strictCodeVersion: boolean;
  readonly sinkAttempts: number;
  readonly scaleOut: 'single' | 'group';
  readonly groupEpochBase: number;
}

const NAME = /^[A-Za-z0-9._-]+$/;

function fail(field: string, expected: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got) : typeof got === 'object' ? (got === null ? 'null' : Array.isArray(got) ? 'an array' : 'an object') : String(got);
  throw new BadConfigError(`Job field \`${field}\` must be ${expected}; got ${shown}.`);
}

function positiveInt(field: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (!isWholeNumber(value, 1)) fail(field, 'a positive whole number', value);
  return value;
}

function nonNegativeInt(field: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (!isWholeNumber(value)) fail(field, 'a whole number ≥ 0', value);
  return value;
}

function oneOf<V extends string>(field: string, value: unknown, allowed: readonly V[], fallback: V): V {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as V)) fail(field, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  return value as V;
}

function checkSink(field: string, sink: unknown): void {
  if (typeof sink !== 'object' || sink === null) fail(field, 'a sink (an object with `name` and `write`)', sink);
  const s = sink as Partial<Sink<unknown>>;
  if (typeof s.name !== 'string' || !NAME.test(s.name)) fail(`${field}.name`, 'a name of letters, digits, `.`, `_` or `-`', s.name);
  if (typeof s.write !== 'function') fail(`${field}.write`, 'a function', s.write);
}

export function defineJob<T>(definition: JobDefinition<T>): Job<T> {
  const d = definition as Partial<JobDefinition<T>> | undefined;
  if (typeof d !== 'object' || d === null) fail('(job)', 'an object', d);
  if (typeof d.name !== 'string' || !NAME.test(d.name)) fail('name', 'a name of letters, digits, `.`, `_` or `-`', d.name);
  const src = d.source as Partial<Source> | undefined;
  if (typeof src !== 'object' || src === null) fail('source', 'a source (e.g. embeddedLogSource(...) or kafkaSource(...))', src);
  for (const m of ['partitions', 'offsets', 'startingOffsets', 'read', 'close'] as const) {
    if (typeof src[m] !== 'function') fail(`source.${m}`, 'a function', src[m]);
  }
  if (typeof src.id !== 'string' || src.id === '') fail('source.id', 'a non-empty string', src.id);
  if (!Array.isArray(d.sinks) || d.sinks.length === 0) fail('sinks', 'a non-empty array of sinks', d.sinks);
  d.sinks.forEach((s, i) => checkSink(`sinks[${i}]`, s));
  if (typeof d.transform !== 'function') fail('transform', 'a function (records, context) => outputs', d.transform);
  const onTransformError = oneOf('onTransformError', d.onTransformError, ['fail', 'dead-letter'], 'fail');
  const onSinkError = oneOf('onSinkError', d.onSinkError, ['fail', 'dead-letter'], 'fail');
  for (const [field, policy] of [['onTransformError', onTransformError], ['onSinkError', onSinkError]] as const) {
    if (policy !== 'dead-letter') continue;
    if (d.deadLetterSink === undefined) fail('deadLetterSink', `a sink when ${field} is 'dead-letter'`, undefined);
    checkSink('deadLetterSink', d.deadLetterSink);
  }
  const names = [...d.sinks, ...(d.deadLetterSink ? [d.deadLetterSink] : [])].map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) fail('sinks', 'sinks with distinct names', `two sinks named ${dup}`);
  if (d.codeVersion !== undefined && (typeof d.codeVersion !== 'string' || d.codeVersion === '')) fail('codeVersion', 'a non-empty string', d.codeVersion);
  if (d.checkpoint?.dir !== undefined && typeof d.checkpoint.dir !== 'string') fail('checkpoint.dir', 'a path', d.checkpoint.dir);
  const scaleOut = oneOf('scaleOut', d.scaleOut, ['single', 'group'], 'single');
  if (scaleOut === 'group' && typeof (src as { joinGroup?: unknown }).joinGroup !== 'function') {
    throw new BadConfigError(`Job field \`scaleOut\` is 'group', but the source ${src.id} is not a kafkaSource: group mode spreads a Kafka topic's partitions over the daemons of the job's consumer group.`);
  }
  // A sink without claim() cannot refuse a partition's older owner (a daemon frozen past its
  // session that wakes and writes): exactly-once across handoffs needs every sink to fence.
  const unfenced = scaleOut === 'group' ? [...d.sinks, ...(d.deadLetterSink ? [d.deadLetterSink] : [])].filter((s) => typeof s.claim !== 'function') : [];
  if (unfenced.length > 0) {
    throw new BadConfigError(`Job field \`scaleOut\` is 'group', but the sink${unfenced.length > 1 ? 's' : ''} ${unfenced.map((s) => s.name).join(', ')} cannot fence a partition's older owner (no \`claim\`), so a daemon frozen past its session could write again after the partition moved. `
      + "Use sinks that fence (fileSink, postgresSink, kafkaSink), give your sink a `claim` (docs/scale-out.md, Requirements), or run the job with scaleOut 'single'.");
  }
  const b = d.batch ?? {};
  const maxWaitMs = nonNegativeInt('batch.maxWaitMs', b.maxWaitMs, 1_000);
  return Object.freeze({
    kind: 'tidemark.job',
    name: d.name,
    source: d.source!,
    sinks: [...d.sinks],
    transform: d.transform,
    limits: {
      maxRecordsPerPartition: positiveInt('batch.maxRecordsPerPartition', b.maxRecordsPerPartition, 100_000),
      maxBatchBytes: positiveInt('batch.maxBatchBytes', b.maxBatchBytes, 64 * 1024 * 1024),
      minRecords: positiveInt('batch.minRecords', b.minRecords, 1),
      maxWaitMs,
    },
    pollIntervalMs: positiveInt('batch.pollIntervalMs', b.pollIntervalMs, 200),
    targetMs: b.targetMs === undefined ? undefined : positiveInt('batch.targetMs', b.targetMs, 1),
    maxInFlight: b.maxInFlight !== undefined && isWholeNumber(b.maxInFlight) && b.maxInFlight > MAX_IN_FLIGHT
      ? fail('batch.maxInFlight', `a whole number from 1 to ${MAX_IN_FLIGHT}`, b.maxInFlight) : positiveInt('batch.maxInFlight', b.maxInFlight, 2),
    checkpointDir: d.checkpoint?.dir,
    retainBatches: positiveInt('checkpoint.retainBatches', d.checkpoint?.retainBatches, 100),
    stageOutputs: d.stageOutputs === undefined ? true : d.stageOutputs === true ? true : d.stageOutputs === false ? false : fail('stageOutputs', 'true or false', d.stageOutputs),
    onTransformError,
    onSinkError,
    deadLetterSink: d.deadLetterSink,
    onDataLoss: oneOf('onDataLoss', d.onDataLoss, ['fail', 'skip'], 'fail'),
    codeVersion: d.codeVersion,
    strictCodeVersion: d.strictCodeVersion === true,
    sinkAttempts: positiveInt('sinkAttempts', d.sinkAttempts, 5),
    scaleOut,
    groupEpochBase: nonNegativeInt('groupEpochBase', d.groupEpochBase, 0),
  });
}

export function isJob(value: unknown): value is Job<unknown> {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'tidemark.job';
}
