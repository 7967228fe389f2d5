// The engine: plan → read → transform → stage → deliver → commit, one batch at a time.
//
// A batch moves through the states of the checkpoint (docs/protocol.md). `advance()`
// takes a batch in whatever state it is and carries it to COMMITTED; a batch recovered
// from the checkpoint enters it exactly like a freshly planned one, so there is no
// second, recovery-only execution path.
import { isTidemarkError, SinkError } from '../checkpoint/errors';
import type { BatchRecord, OffsetMap, Range } from '../checkpoint/model';
import { partitionKey } from '../checkpoint/model';
import { FORMAT_VERSION, openCheckpoint, type CheckpointStore } from '../checkpoint/store';
import { decideRecovery, describeRanges, hasStagedOutputs } from '../recovery/decide';
import type { SourceRecord } from './contracts';
import type { CrashPoint } from './crash-seam';
import type { Job } from './job';
import { silentLogger, type Logger } from './log';
import { advancePositions, planRanges } from './planner';
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
}

export interface BatchStats {
  readonly id: number;
  readonly ranges: readonly Range[];
  readonly records: number;
  readonly outputs: number;
  readonly deadLetters: number;
  readonly recovered: boolean;
  /** Milliseconds per phase. */
  readonly durations: Readonly<Record<string, number>>;
  /** Records not yet processed, per partition key, as of this batch's plan. */
  readonly lag: OffsetMap;
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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Engine<T> {
  private store: CheckpointStore | undefined;
  private positions: OffsetMap = {};
  private lastCommitted = 0;
  private stopping = false;
  private wake: (() => void) | undefined;
  private avgRecordBytes = 1024;
  private lastBatchAt = Date.now();
  private lag: OffsetMap = {};
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

  async run(options: RunOptions = {}): Promise<RunSummary> {
    let batches = 0;
    let records = 0;
    const counted = (stats: BatchStats): void => {
      batches++;
      records += stats.records;
      this.options.onBatch?.(stats);
    };
    try {
      const recovered = await this.recover();
      if (recovered) counted(await this.advance(recovered, true));
      this.recovered = true;
      const ceiling = options.once ? await this.latestOffsets() : undefined;
      while (!this.stopping && (options.maxBatches === undefined || batches < options.maxBatches)) {
        const batch = await this.planBatch(ceiling);
        if (batch) {
          counted(await this.advance(batch, false));
        } else if (ceiling) {
          break; // available-now: everything there was at start is done
        } else {
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
      if (dir === undefined) throw new Error('no checkpoint directory: pass checkpointDir or set checkpoint.dir in the job');
      this.store = await openCheckpoint(dir, {
        retainBatches: this.job.retainBatches,
        onLockCompromised: (err) => {
          this.log.error({ err: err.message }, 'checkpoint lock compromised: stopping before the next write');
          this.stop();
        },
      });
    }
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

  /** Plans the next batch and writes it as PLANNED; undefined when there is nothing to do yet. */
  private async planBatch(ceiling: OffsetMap | undefined): Promise<BatchRecord | undefined> {
    const started = Date.now();
    const parts = await this.job.source.partitions();
    const fresh = parts.filter((p) => this.positions[partitionKey(p)] === undefined);
    const [latestNow, earliest, starting] = await Promise.all([
      this.job.source.offsets(parts, 'latest'),
      this.job.source.offsets(parts, 'earliest'),
      fresh.length > 0 ? this.job.source.startingOffsets(fresh) : Promise.resolve<OffsetMap>({}),
    ]);
    let latest = latestNow;
    if (ceiling) {
      const capped: Record<string, number> = {};
      for (const [key, end] of Object.entries(ceiling)) capped[key] = Math.min(end, latestNow[key] ?? end);
      latest = capped;
    }
    const plan = planRanges({
      positions: this.positions, starting, earliest, latest, limits: this.job.limits, avgRecordBytes: this.avgRecordBytes,
      waitedMs: ceiling ? Infinity : Date.now() - this.lastBatchAt, onDataLoss: this.job.onDataLoss,
    });
    const lag: Record<string, number> = {};
    for (const [key, end] of Object.entries(latestNow)) lag[key] = Math.max(0, end - (this.positions[key] ?? starting[key] ?? end));
    this.lag = lag;
    if (plan.kind === 'wait') return undefined;
    for (const r of plan.lost) this.log.warn({ lost: r }, `data loss: ${partitionKey(r)} [${r.from}, ${r.until}) is no longer in the source; skipped under onDataLoss 'skip'`);
    const batch: BatchRecord = {
      id: this.lastCommitted + 1, state: 'planned', ranges: plan.ranges, fingerprint: this.fingerprint, plannedAt: Date.now(),
      ...(plan.lost.length > 0 ? { lost: plan.lost } : {}),
    };
    await this.store!.planBatch(batch);
    await this.crash('planned');
    return { ...batch, durations: { plan: Date.now() - started } };
  }

  /** Carries a batch from its current state to COMMITTED. */
  private async advance(batch: BatchRecord, recovered: boolean): Promise<BatchStats> {
    const store = this.store!;
    const durations: Record<string, number> = { ...batch.durations };
    const timed = async <R>(phase: string, work: () => Promise<R>): Promise<R> => {
      const t = Date.now();
      try {
        return await work();
      } finally {
        durations[phase] = (durations[phase] ?? 0) + Date.now() - t;
      }
    };
    if (recovered) this.log.info({ batch: batch.id, state: batch.state, ranges: batch.ranges }, `recovering batch ${batch.id} (${batch.state}): ${describeRanges(batch.ranges)}`);

    let staged = batch;
    let outputs: Record<string, unknown[]>;
    let records = batch.recordsIn ?? 0;
    if (hasStagedOutputs(batch)) {
      outputs = await timed('read', () => store.readStagedOutputs(batch));
    } else {
      const input = await timed('read', () => this.read(batch.ranges));
      records = input.length;
      await this.crash('read');
      const result = await timed('transform', () => runTransform(this.job, input, { batchId: batch.id, ranges: batch.ranges }));
      await this.crash('transformed');
      outputs = { [OUTPUTS]: result.outputs, ...(result.deadLetters.length > 0 ? { [DEAD_LETTERS]: result.deadLetters } : {}) };
      const counts = { [OUTPUTS]: result.outputs.length, [DEAD_LETTERS]: result.deadLetters.length };
      staged = await timed('stage', () => store.stageBatch(
        { ...batch, fingerprint: this.fingerprint, recordsIn: records, outputsOut: counts },
        this.job.stageOutputs ? outputs : undefined,
      ));
      await this.crash('staged');
    }

    const main = (outputs[OUTPUTS] ?? []) as T[];
    const dead = outputs[DEAD_LETTERS] ?? [];
    await timed('deliver', async () => {
      for (const sink of this.job.sinks) await this.deliver(sink, staged, main);
      if (this.job.deadLetterSink && dead.length > 0) await this.deliver(this.job.deadLetterSink, staged, dead as never[]);
    });

    const positions = advancePositions(this.positions, staged.ranges);
    await timed('commit', () => store.commitBatch({ ...staged, durations }, positions, staged.lost ?? []));
    this.positions = positions;
    this.lastCommitted = staged.id;
    this.lastBatchAt = Date.now();
    await this.crash('committed');
    if (this.job.source.committed) {
      try {
        await this.job.source.committed(positions);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not report positions to the source (group offsets); the checkpoint is unaffected');
      }
    }
    await this.crash('source-committed');

    const stats: BatchStats = {
      id: staged.id, ranges: staged.ranges, records, outputs: main.length, deadLetters: dead.length, recovered, durations, lag: this.lag,
    };
    this.log.info({ batch: stats.id, records, outputs: stats.outputs, deadLetters: stats.deadLetters, ranges: staged.ranges, durations, recovered }, `batch ${stats.id} committed`);
    return stats;
  }

  private async read(ranges: readonly Range[]): Promise<SourceRecord[]> {
    const records: SourceRecord[] = [];
    let bytes = 0;
    const controller = new AbortController();
    for await (const chunk of this.job.source.read(ranges, controller.signal)) {
      for (const r of chunk) {
        records.push(r);
        bytes += (r.value?.length ?? 0) + (r.key?.length ?? 0) + 64;
      }
    }
    if (records.length > 0) this.avgRecordBytes = 0.7 * this.avgRecordBytes + 0.3 * (bytes / records.length);
    return records;
  }

  private async deliver<O>(sink: { name: string; write(b: { id: number; ranges: readonly Range[]; outputs: readonly O[] }): Promise<void> }, batch: BatchRecord, outputs: readonly O[]): Promise<void> {
    if (outputs.length === 0) return;
    await this.crash(`delivering:${sink.name}`);
    for (let attempt = 1; ; attempt++) {
      try {
        await sink.write({ id: batch.id, ranges: batch.ranges, outputs });
        break;
      } catch (err) {
        if (isTidemarkError(err)) throw err;
        if (attempt >= this.job.sinkAttempts) throw new SinkError(sink.name, batch.id, err);
        const wait = Math.min(5_000, 100 * 2 ** (attempt - 1));
        this.log.warn({ sink: sink.name, batch: batch.id, attempt, err: (err as Error).message }, `sink ${sink.name} failed; retrying in ${wait} ms (the batch stays staged)`);
        await sleep(wait);
      }
    }
    await this.crash(`delivered:${sink.name}`);
  }

  private async idle(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.job.pollIntervalMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private async close(): Promise<void> {
    const closing: Array<Promise<unknown> | undefined> = [this.job.source.close(), ...this.job.sinks.map((s) => s.close?.())];
    if (this.job.deadLetterSink?.close) closing.push(this.job.deadLetterSink.close());
    const results = await Promise.allSettled(closing);
    for (const r of results) if (r.status === 'rejected') this.log.warn({ err: String(r.reason) }, 'closing a source or sink failed');
    if (this.store && !this.options.store) await this.store.close();
  }
}
