// The engine: plan → read → transform → stage → deliver → commit, one batch at a time.
//
// A batch moves through the states of the checkpoint (docs/protocol.md). `advance()`
// takes a batch in whatever state it is and carries it to COMMITTED; a batch recovered
// from the checkpoint enters it exactly like a freshly planned one, so there is no
// second, recovery-only execution path.
import { BadConfigError, isTidemarkError } from '../checkpoint/errors';
import { SinkError, type SinkRejectedError } from './errors';
import type { BatchRecord, OffsetMap, PartitionRef, Range } from '../checkpoint/model';
import { isWholeNumber, parsePartitionKey, partitionKey } from '../checkpoint/model';
import { FORMAT_VERSION, openCheckpoint, type CheckpointStore } from '../checkpoint/store';
import { decideRecovery, describeRanges, hasStagedOutputs } from '../recovery/decide';
import type { RejectedOutput, Sink, SourceRecord } from './contracts';
import type { CrashPoint } from './crash-seam';
import type { Job } from './job';
import { silentLogger, type Logger } from './log';
import { advancePositions, planRanges } from './planner';
import { retry } from './retry';
import { runTransform } from './transform';

export interface EngineOptions {
  /** Where the checkpoint lives; defaults to the job's `checkpoint.dir`. */
  readonly checkpointDir?: string;
  /** The hash of the job's code (`fingerprintOf()`); the job's `codeVersion` takes precedence. */
  readonly fingerprint?: string;
  readonly acceptCodeChange?: boolean;
  readonly logger?: Logger;
  /** The crash seam (tests): called at each named point of the protocol. */
  readonly crashPoint?: CrashPoint;
  /** An open store to use instead of opening `checkpointDir` (tests model power loss with it). */
  readonly store?: CheckpointStore;
  /** Called after every committed batch (progress, metrics). */
  readonly onBatch?: (stats: BatchStats) => void;
}

export interface RunOptions {
  /** Process what is available at start, then stop (Spark's available-now trigger). */
  readonly once?: boolean;
  /** Stop after this many batches. */
  readonly maxBatches?: number;
  /**
   * Process exactly these ranges (one per partition), in batches within the job's limits,
   * then stop (Spark's `createRDD`). A range continues its partition's position without a
   * gap: on a fresh checkpoint it starts where it says; after a crash, running the same
   * ranges again finishes what is left and skips what is done.
   */
  readonly ranges?: readonly Range[];
}

export interface BatchStats {
  readonly id: number;
  readonly ranges: readonly Range[];
  readonly records: number;
  /** Key and value bytes of the records read (for a redelivered batch: as recorded when it was staged). */
  readonly bytesIn: number;
  readonly outputs: number;
  /** Bytes of the outputs as staged in the checkpoint (0 for jobs with `stageOutputs: false`). */
  readonly bytesOut: number;
  readonly deadLetters: number;
  readonly recovered: boolean;
  /** Milliseconds per phase. */
  readonly durations: Readonly<Record<string, number>>;
  /** Records not yet processed, per partition key, after this batch (source ends as of its plan). */
  readonly lag: OffsetMap;
}

/** A snapshot of a running engine, for metrics, health checks and progress displays. */
export interface EngineStatus {
  /** Recovery is done: the batch in flight at start, if any, is committed. */
  readonly recovered: boolean;
  readonly stopping: boolean;
  /** This process holds the checkpoint's lock (false before it is opened, after it is closed, and once the lock is lost). */
  readonly lockHeld: boolean;
  readonly lastCommitted: number;
  readonly positions: OffsetMap;
  /** Records not yet processed, per partition key: source ends as of the last plan, positions as of the last commit. */
  readonly lag: OffsetMap;
  /** When the loop last finished a step (a committed batch, or a poll that found nothing to do). */
  readonly progressAt: number | undefined;
}

/** What a bounded run may read: up to `until` per partition and, for partitions new to the checkpoint, from `from`. */
interface Bounds {
  readonly until: OffsetMap;
  readonly from?: OffsetMap;
}

export interface RunSummary {
  readonly batches: number;
  readonly records: number;
  readonly lastCommitted: number;
  readonly positions: OffsetMap;
}

/** Names of the streams of staged outputs of a batch. */
const OUTPUTS = 'outputs';
const DEAD_LETTERS = 'dead-letters';
/** Outputs sinks rejected (onSinkError 'dead-letter'), staged before the rest is written so a redelivery sets aside the same ones. */
const REJECTED = 'rejected';

function rangeProblem(r: Range): string | undefined {
  if (typeof r !== 'object' || r === null) return 'is not an object';
  if (typeof r.topic !== 'string' || r.topic === '') return 'needs a `topic` (a non-empty string)';
  for (const f of ['partition', 'from', 'until'] as const) {
    if (!isWholeNumber(r[f])) return `needs \`${f}\` (a whole number ≥ 0)`;
  }
  return r.from > r.until ? 'has `from` after `until`' : undefined;
}

/**
 * The record size the first batch is planned with, before any record was seen: large, so
 * that a topic of big records cannot make the first batch many times `maxBatchBytes` (with
 * 1 KiB assumed, 20,000 records of 10 KB became one 200 MB batch). Later batches use what
 * was measured.
 */
const FIRST_BATCH_RECORD_BYTES = 64 * 1024;

/** Milliseconds since `start` (a performance.now() reading), to 0.01 ms. */
const elapsedMs = (start: number): number => Math.round((performance.now() - start) * 100) / 100;

export class Engine<T> {
  private store: CheckpointStore | undefined;
  private positions: OffsetMap = {};
  private lastCommitted = 0;
  private stopping = false;
  private wake: (() => void) | undefined;
  /** Measured bytes per record (key + value + overhead), undefined until a batch was read. */
  private avgRecordBytes: number | undefined;
  private lastBatchAt = Date.now();
  private positionsToReport: OffsetMap | undefined;
  private reporting: Promise<void> | undefined;
  /** Set by a plan that waits for more records: ms until the batch is due anyway (maxWaitMs). */
  private fillingMs: number | undefined;
  private lag: OffsetMap = {};
  /** The source's ends as of the last plan. */
  private latestSeen: OffsetMap = {};
  private lockHeld = false;
  private progressAt: number | undefined;
  private readonly log: Logger;
  private readonly crash: CrashPoint;
  readonly fingerprint: string;
  /** True once recovery is done (for /readyz). */
  recovered = false;

  constructor(readonly job: Job<T>, private readonly options: EngineOptions = {}) {
    this.log = options.logger ?? silentLogger;
    this.crash = options.crashPoint ?? (() => {});
    this.fingerprint = job.codeVersion !== undefined ? `codeVersion:${job.codeVersion}` : options.fingerprint ?? 'unversioned';
  }

  /** Finish the batch in flight, commit it, then return from `run()`. */
  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  get stopRequested(): boolean {
    return this.stopping;
  }

  status(): EngineStatus {
    return {
      recovered: this.recovered, stopping: this.stopping, lockHeld: this.lockHeld, lastCommitted: this.lastCommitted,
      positions: this.positions, lag: this.lag, progressAt: this.progressAt,
    };
  }

  async run(options: RunOptions = {}): Promise<RunSummary> {
    let batches = 0;
    let records = 0;
    const counted = (stats: BatchStats): void => {
      batches++;
      records += stats.records;
      this.progressAt = Date.now();
      this.options.onBatch?.(stats);
    };
    try {
      const recovered = await this.recover();
      if (recovered) counted(await this.advance(recovered, true));
      this.recovered = true;
      const bounds: Bounds | undefined = options.ranges ? await this.rangeBounds(options.ranges)
        : options.once ? { until: await this.latestOffsets() } : undefined;
      while (!this.stopping && (options.maxBatches === undefined || batches < options.maxBatches)) {
        const batch = await this.planBatch(bounds);
        if (batch) {
          counted(await this.advance(batch, false));
        } else if (bounds) {
          break; // available-now, or the given ranges: everything there was to do is done
        } else {
          this.progressAt = Date.now();
          await this.idle();
        }
      }
      return { batches, records, lastCommitted: this.lastCommitted, positions: this.positions };
    } finally {
      await this.close();
    }
  }

  /** Opens and locks the checkpoint, decides recovery, records the decision's meta. */
  private async recover(): Promise<BatchRecord | undefined> {
    const dir = this.options.checkpointDir ?? this.job.checkpointDir;
    if (this.options.store) {
      this.store = this.options.store;
    } else {
      if (dir === undefined) throw new BadConfigError('No checkpoint directory: pass checkpointDir to the Engine, or set checkpoint.dir in the job (tidemark run: --checkpoint).');
      this.store = await openCheckpoint(dir, {
        retainBatches: this.job.retainBatches,
        onLockCompromised: (err) => {
          this.lockHeld = false;
          this.log.error({ err: err.message }, 'checkpoint lock compromised: stopping before the next write');
          this.stop();
        },
      });
    }
    this.lockHeld = true;
    const view = await this.store.load();
    await this.crash('recovering');
    const needsEarliest = view.inFlight && !hasStagedOutputs(view.inFlight);
    const earliest = needsEarliest ? await this.job.source.offsets(view.inFlight!.ranges, 'earliest') : {};
    const decision = decideRecovery({
      dir: this.store.dir, view, fingerprint: this.fingerprint, acceptCodeChange: this.options.acceptCodeChange === true,
      earliest, format: FORMAT_VERSION, now: Date.now(),
      job: {
        name: this.job.name, sourceId: this.job.source.id, strictCodeVersion: this.job.strictCodeVersion, onDataLoss: this.job.onDataLoss,
        sinks: [...this.job.sinks, ...(this.job.deadLetterSink ? [this.job.deadLetterSink] : [])].map((s) => s.name),
      },
    });
    for (const note of decision.notes) this.log.info({ lastCommitted: decision.lastCommitted }, note);
    if (decision.meta) await this.store.writeMeta(decision.meta);
    this.positions = decision.resumeAt;
    this.lastCommitted = decision.lastCommitted;
    return decision.redeliver ?? decision.rerun;
  }

  private async latestOffsets(): Promise<OffsetMap> {
    return this.job.source.offsets(await this.job.source.partitions(), 'latest');
  }

  /** Checks explicit ranges against the source and the positions; the partitions still to do, with their bounds. */
  private async rangeBounds(ranges: readonly Range[]): Promise<Bounds> {
    const known = new Set((await this.job.source.partitions()).map(partitionKey));
    const until: Record<string, number> = {};
    const from: Record<string, number> = {};
    for (const r of ranges) {
      const problem = rangeProblem(r);
      if (problem) throw new BadConfigError(`Range ${JSON.stringify(r)} ${problem}.`);
      const key = partitionKey(r);
      if (!known.has(key)) throw new BadConfigError(`Range ${JSON.stringify(r)}: the source ${this.job.source.id} has no partition ${key}.`);
      if (key in until) throw new BadConfigError(`Two ranges for ${key}: give one range per partition.`);
      until[key] = r.until;
      from[key] = r.from;
    }
    const latest = await this.job.source.offsets(ranges.map((r) => ({ topic: r.topic, partition: r.partition })), 'latest');
    for (const r of ranges) {
      const key = partitionKey(r);
      const end = latest[key] ?? 0;
      if (r.until > end) throw new BadConfigError(`Range ${key} [${r.from}, ${r.until}) ends beyond the source, which ends at offset ${end}.`);
      const position = this.positions[key];
      if (position !== undefined && position < r.from) {
        throw new BadConfigError(
          `Range ${key} [${r.from}, ${r.until}) starts after the checkpoint's position ${position}: offsets [${position}, ${r.from}) would be skipped. ` +
          'Ranges continue a checkpoint without gaps; run a one-off job over ranges with a fresh --checkpoint directory.');
      }
      if (position !== undefined && position >= r.until) delete until[key]; // done already (the same ranges, run again)
    }
    return { until, from };
  }

  /** Plans the next batch and writes it as PLANNED; undefined when there is nothing to do yet. */
  private async planBatch(bounds: Bounds | undefined): Promise<BatchRecord | undefined> {
    const started = performance.now();
    const parts: PartitionRef[] = bounds ? Object.keys(bounds.until).map(parsePartitionKey) : await this.job.source.partitions();
    const fresh = parts.filter((p) => this.positions[partitionKey(p)] === undefined);
    const [latestNow, earliest, starting] = await Promise.all([
      this.job.source.offsets(parts, 'latest'),
      this.job.source.offsets(parts, 'earliest'),
      fresh.length === 0 ? Promise.resolve<OffsetMap>({})
        : bounds?.from ? Promise.resolve<OffsetMap>(Object.fromEntries(fresh.map((p) => [partitionKey(p), bounds.from![partitionKey(p)]!])))
          : this.job.source.startingOffsets(fresh),
    ]);
    let latest = latestNow;
    if (bounds) {
      const capped: Record<string, number> = {};
      for (const [key, end] of Object.entries(bounds.until)) capped[key] = Math.min(end, latestNow[key] ?? end);
      latest = capped;
    }
    const waitedMs = bounds ? Infinity : Date.now() - this.lastBatchAt;
    const plan = planRanges({
      positions: this.positions, starting, earliest, latest, limits: this.job.limits, avgRecordBytes: this.avgRecordBytes ?? FIRST_BATCH_RECORD_BYTES,
      waitedMs, onDataLoss: this.job.onDataLoss,
    });
    const lag: Record<string, number> = {};
    for (const [key, end] of Object.entries(latestNow)) lag[key] = Math.max(0, end - (this.positions[key] ?? starting[key] ?? end));
    this.lag = lag;
    this.latestSeen = latestNow;
    if (plan.kind === 'wait') {
      // Short of minRecords: the batch is due when maxWaitMs has passed. Nothing at all: on new data.
      this.fillingMs = plan.available > 0 ? Math.max(1, this.job.limits.maxWaitMs - waitedMs) : undefined;
      return undefined;
    }
    for (const r of plan.lost) this.log.warn({ lost: r }, `data loss: ${partitionKey(r)} [${r.from}, ${r.until}) is no longer in the source; skipped under onDataLoss 'skip'`);
    const batch: BatchRecord = {
      id: this.lastCommitted + 1, state: 'planned', ranges: plan.ranges, fingerprint: this.fingerprint, plannedAt: Date.now(),
      ...(plan.lost.length > 0 ? { lost: plan.lost } : {}),
    };
    await this.store!.planBatch(batch);
    await this.crash('planned');
    return { ...batch, durations: { plan: elapsedMs(started) } };
  }

  /** Carries a batch from its current state to COMMITTED. */
  private async advance(batch: BatchRecord, recovered: boolean): Promise<BatchStats> {
    const store = this.store!;
    const durations: Record<string, number> = { ...batch.durations };
    const timed = async <R>(phase: string, work: () => Promise<R>): Promise<R> => {
      const t = performance.now();
      try {
        return await work();
      } finally {
        durations[phase] = (durations[phase] ?? 0) + elapsedMs(t);
      }
    };
    if (recovered) this.log.info({ batch: batch.id, state: batch.state, ranges: batch.ranges }, `recovering batch ${batch.id} (${batch.state}): ${describeRanges(batch.ranges)}`);

    let staged = batch;
    let outputs: Record<string, unknown[]>;
    let records = batch.recordsIn ?? 0;
    let bytesIn = batch.bytesIn ?? 0;
    if (hasStagedOutputs(batch)) {
      outputs = await timed('read', () => store.readStagedOutputs(batch));
    } else {
      const read = await timed('read', () => this.read(batch.ranges));
      records = read.records.length;
      bytesIn = read.bytes;
      await this.crash('read');
      const result = await timed('transform', () => runTransform(this.job, read.records, { batchId: batch.id, ranges: batch.ranges }));
      read.records = []; // the input can be collected while the outputs are staged and delivered
      await this.crash('transformed');
      outputs = { [OUTPUTS]: result.outputs, ...(result.deadLetters.length > 0 ? { [DEAD_LETTERS]: result.deadLetters } : {}) };
      const counts = { [OUTPUTS]: result.outputs.length, [DEAD_LETTERS]: result.deadLetters.length };
      staged = await timed('stage', () => store.stageBatch(
        { ...batch, fingerprint: this.fingerprint, recordsIn: records, bytesIn, outputsOut: counts },
        this.job.stageOutputs ? outputs : undefined,
      ));
      await this.crash('staged');
    }

    const main = (outputs[OUTPUTS] ?? []) as T[];
    const rejected = (outputs[REJECTED] ?? []) as RejectedOutput[];
    const restage = (current: BatchRecord): Promise<BatchRecord> => store.stageBatch(current, { ...outputs, [REJECTED]: rejected });
    await timed('deliver', async () => {
      for (const sink of this.job.sinks) staged = await this.deliverSettingAside(sink, staged, main, rejected, restage);
      const dead = [...(outputs[DEAD_LETTERS] ?? []), ...rejected];
      if (this.job.deadLetterSink && dead.length > 0) await this.deliver(this.job.deadLetterSink, staged, dead as never[]);
    });
    const dead = (outputs[DEAD_LETTERS]?.length ?? 0) + rejected.length;

    const positions = advancePositions(this.positions, staged.ranges);
    await timed('commit', () => store.commitBatch({ ...staged, durations }, positions, staged.lost ?? []));
    this.positions = positions;
    const lag: Record<string, number> = { ...this.lag };
    for (const r of staged.ranges) {
      const end = this.latestSeen[partitionKey(r)];
      if (end !== undefined) lag[partitionKey(r)] = Math.max(0, end - r.until);
    }
    this.lag = lag;
    this.lastCommitted = staged.id;
    this.lastBatchAt = Date.now();
    await this.crash('committed');
    this.reportPositions(positions);
    await this.crash('source-committed');

    const stats: BatchStats = {
      id: staged.id, ranges: staged.ranges, records, bytesIn, bytesOut: staged.stagedBytes ?? 0, outputs: main.length, deadLetters: dead, recovered, durations, lag,
    };
    this.log.info({ batch: stats.id, records, bytesIn, outputs: stats.outputs, bytesOut: stats.bytesOut, deadLetters: stats.deadLetters, ranges: staged.ranges, durations, recovered }, `batch ${stats.id} committed`);
    return stats;
  }

  /**
   * Tells the source the committed positions (Kafka: the group offsets lag tools read)
   * without holding up the next batch: one report in flight, the newest positions win,
   * and close() waits for the last one. The checkpoint, not this, is the truth.
   */
  private reportPositions(positions?: OffsetMap): void {
    const source = this.job.source;
    if (positions) this.positionsToReport = positions;
    const next = this.positionsToReport;
    if (this.reporting || !next || !source.committed) return;
    this.positionsToReport = undefined;
    this.reporting = (async () => {
      try {
        await source.committed!(next);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not report positions to the source (group offsets); the checkpoint is unaffected');
      }
    })().finally(() => {
      this.reporting = undefined;
      this.reportPositions(); // positions that came in meanwhile
    });
  }

  /** Reads the ranges; `bytes` counts keys and values. */
  private async read(ranges: readonly Range[]): Promise<{ records: SourceRecord[]; bytes: number }> {
    const records: SourceRecord[] = [];
    let bytes = 0;
    const controller = new AbortController();
    for await (const chunk of this.job.source.read(ranges, controller.signal)) {
      for (const r of chunk) {
        records.push(r);
        bytes += (r.value?.length ?? 0) + (r.key?.length ?? 0);
      }
    }
    if (records.length > 0) {
      const measured = bytes / records.length + 64;
      this.avgRecordBytes = this.avgRecordBytes === undefined ? measured : 0.7 * this.avgRecordBytes + 0.3 * measured;
    }
    return { records, bytes };
  }

  /**
   * Delivers to one sink, leaving out the outputs it rejected before. When it rejects more
   * (`SinkRejectedError`) under onSinkError 'dead-letter', they are added to `rejected` and
   * the batch is staged again (synced) before the rest is written: the rejection becomes
   * part of the batch, so a redelivery after a crash sets aside exactly the same outputs.
   * Under 'fail' the rejection propagates; its message names the batch and the output.
   */
  private async deliverSettingAside(
    sink: Sink<T>, batch: BatchRecord, outputs: readonly T[], rejected: RejectedOutput[], restage: (batch: BatchRecord) => Promise<BatchRecord>,
  ): Promise<BatchRecord> {
    for (;;) {
      const aside = new Set(rejected.filter((r) => r.sink === sink.name).map((r) => r.index));
      // Indexes of the outputs written (into `outputs`); none set aside: all of them, and no index list is built.
      const kept = aside.size === 0 ? undefined : outputs.flatMap((_, i) => (aside.has(i) ? [] : [i]));
      try {
        await this.deliver(sink, batch, kept ? kept.map((i) => outputs[i]!) : outputs);
        return batch;
      } catch (err) {
        if (!isTidemarkError(err) || err.code !== 'TIDEMARK_SINK_REJECTED' || this.job.onSinkError !== 'dead-letter') throw err;
        const rows = (err as SinkRejectedError).rejected;
        const indexOf = (i: number): number | undefined => (kept ? kept[i] : i < outputs.length ? i : undefined);
        if (rows.length === 0 || rows.some((r) => indexOf(r.index) === undefined)) throw err;
        for (const r of rows) rejected.push({ sink: sink.name, batchId: batch.id, index: indexOf(r.index)!, output: r.output, error: r.reason });
        this.log.warn({ sink: sink.name, batch: batch.id, rejected: rows.length }, `sink ${sink.name} rejected ${rows.length} outputs of batch ${batch.id}: routing them to the dead-letter sink, writing the rest`);
        batch = await restage(batch);
      }
    }
  }

  private async deliver<O>(sink: Sink<O>, batch: BatchRecord, outputs: readonly O[]): Promise<void> {
    if (outputs.length === 0) return;
    await this.crash(`delivering:${sink.name}`);
    await retry(() => sink.write({ id: batch.id, job: this.job.name, ranges: batch.ranges, outputs }), {
      baseMs: 100, maxMs: 5_000, attempts: this.job.sinkAttempts,
      retryable: (err) => !isTidemarkError(err),
      giveUp: (err) => new SinkError(sink.name, batch.id, err),
      onRetry: (err, attempt, wait) => this.log.warn({ sink: sink.name, batch: batch.id, attempt, err: (err as Error).message },
        `sink ${sink.name} failed; retrying in ${wait} ms (the batch stays staged)`),
    });
    await this.crash(`delivered:${sink.name}`);
  }

  /**
   * Waits for the next plan: until the batch being filled is due (maxWaitMs), or — when
   * there was nothing to read — until the source has new records; at most pollIntervalMs.
   */
  private async idle(): Promise<void> {
    if (this.stopping) return; // stop() came while the plan was in flight: nothing to wake us
    const filling = this.fillingMs;
    const ms = Math.min(this.job.pollIntervalMs, filling ?? Infinity);
    const controller = new AbortController();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.wake = wake;
      if (filling === undefined) this.job.source.waitForData?.(ms, controller.signal).then(wake, wake);
    });
    controller.abort();
    this.wake = undefined;
  }

  private async close(): Promise<void> {
    while (this.reporting) await this.reporting;
    const closing: Array<Promise<unknown> | undefined> = [this.job.source.close(), ...this.job.sinks.map((s) => s.close?.())];
    if (this.job.deadLetterSink?.close) closing.push(this.job.deadLetterSink.close());
    const results = await Promise.allSettled(closing);
    for (const r of results) if (r.status === 'rejected') this.log.warn({ err: String(r.reason) }, 'closing a source or sink failed');
    if (this.store && !this.options.store) await this.store.close();
    this.lockHeld = false;
  }
}
