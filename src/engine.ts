// The engine: plan → read → transform → stage → deliver → commit, one batch at a time.
//
// A batch moves through the states of the checkpoint (docs/protocol.md). `advance()`
// takes a batch in whatever state it is and carries it to COMMITTED; a batch recovered
// from the checkpoint enters it exactly like a freshly planned one, so there is no
// second, recovery-only execution path. The whole protocol is this file, the pure
// decisions (src/planner.ts, recovery/decide.ts), the writes (checkpoint/store.ts) and
// the delivery to sinks (src/delivery.ts).
import { randomUUID } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import type { Registry } from 'prom-client';
import { BadConfigError } from '../checkpoint/errors';
import { UnstageableOutputError } from '../checkpoint/faithful';
import type { BatchRecord, CheckpointMeta, OffsetMap, PartitionRef, Range } from '../checkpoint/model';
import { parsePartitionKey, partitionKey } from '../checkpoint/model';
import { FORMAT_VERSION, openCheckpoint, type CheckpointStore } from '../checkpoint/store';
import { formatMark, type ProgressMark } from '../recovery/crosscheck';
import { decideRecovery, describeRanges, hasStagedOutputs } from '../recovery/decide';
import { elapsedMs, lagAfterCommit, lagAtPlan, PhaseTimer, type BatchStats, type EngineCheckpoint, type EngineStatus, type RunSummary } from './batch-stats';
import type { SourceRecord } from './contracts';
import type { CrashPoint } from './crash-seam';
import { checkWitnesses } from './witnesses';
import { deliverBatch, streamsOf, type Streams } from './delivery';
import type { Job } from './job';
import { silentLogger, type Logger } from './log';
import { firstBatchSizer, memoryRecordCap, nextBatchSizer, type BatchSizer } from './batch-size';
import { Metrics } from './metrics';
import { advancePositions, planRanges } from './planner';
import { PositionReporter } from './position-report';
import { rangeBounds, type Bounds } from './run-bounds';
import { runTransform, setAsideUnstageable, type TransformResult } from './transform';

export type { BatchStats, EngineCheckpoint, EngineStatus, RunSummary } from './batch-stats';

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
  /** A prom-client registry to publish the daemon's tidemark_* metrics in (README, "Metrics"). */
  readonly registry?: Registry;
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

/**
 * The record size the first batch is planned with, before any record was seen: large, so
 * that a topic of big records cannot make the first batch many times `maxBatchBytes` (with
 * 1 KiB assumed, 20,000 records of 10 KB became one 200 MB batch). Later batches use what
 * was measured.
 */
const FIRST_BATCH_RECORD_BYTES = 64 * 1024;

/** The fingerprint a job's checkpoint records: its `codeVersion` when it sets one, else the hash of its code. */
export function jobFingerprint(job: Pick<Job<unknown>, 'codeVersion'>, codeHash: string | undefined): string {
  return job.codeVersion !== undefined ? `codeVersion:${job.codeVersion}` : codeHash ?? 'unversioned';
}

/** The names of a job's sinks, the dead-letter sink included, as its checkpoint records them. */
export function sinkNames(job: Pick<Job<unknown>, 'sinks' | 'deadLetterSink'>): string[] {
  return [...job.sinks, ...(job.deadLetterSink ? [job.deadLetterSink] : [])].map((s) => s.name);
}

export class Engine<T> {
  private store: CheckpointStore | undefined;
  private positions: OffsetMap = {};
  private lastCommitted = 0;
  private stopping = false;
  private wake: (() => void) | undefined;
  /** Measured bytes per record (key + value + overhead), undefined until a batch was read. */
  private avgRecordBytes: number | undefined;
  private lastBatchAt = Date.now();
  /** batch.targetMs: the records the next batch may hold (src/batch-size.ts). */
  private sizer: BatchSizer | undefined;
  private readonly reporter: PositionReporter;
  /** Set by a plan that waits for more records: ms until the batch is due anyway (maxWaitMs). */
  private fillingMs: number | undefined;
  private lag: OffsetMap = {};
  /** The source's ends as of the last plan. */
  private latestSeen: OffsetMap = {};
  /**
   * The inputs of the last plan that found nothing at all to read. A source that answers
   * with the very same objects while nothing changed (the embedded log) then costs no plan:
   * over 10,000 partitions, planning each 200 ms poll took most of the idle CPU (2026-11).
   * Same inputs, nothing to read: the plan cannot differ (waitedMs matters only with records).
   */
  private idleInputs: { readonly latest: OffsetMap; readonly earliest: OffsetMap; readonly positions: OffsetMap } | undefined;
  private lockHeld = false;
  /** The checkpoint's id, handed to the sinks (meta.checkpointId). */
  private checkpointId: string | undefined;
  /** The checkpoint's id and reset count, sent with each batch's positions to the source (recovery/crosscheck.ts). */
  private lineage: Omit<ProgressMark, 'batch'> | undefined;
  private progressAt: number | undefined;
  /** The checkpoint's meta as recovery left it, and the batch between PLANNED and COMMITTED (the status page). */
  private meta: CheckpointMeta | undefined;
  private inFlight: BatchRecord | undefined;
  private readonly log: Logger;
  private readonly crash: CrashPoint;
  readonly fingerprint: string;
  private readonly metrics: Metrics | undefined;
  /** True once recovery is done (for /readyz). */
  recovered = false;

  constructor(readonly job: Job<T>, private readonly options: EngineOptions = {}) {
    this.log = options.logger ?? silentLogger;
    this.crash = options.crashPoint ?? (() => {});
    this.fingerprint = jobFingerprint(job, options.fingerprint);
    this.reporter = new PositionReporter(job.source, this.log);
    const checkpointDir = options.checkpointDir ?? job.checkpointDir;
    this.metrics = options.registry && checkpointDir !== undefined
      ? new Metrics({ engine: this, checkpointDir, job: job.name, registry: options.registry }) : undefined;
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

  /** What the engine holds of its checkpoint; never reads the checkpoint, so a page asking it cannot hold a batch up. */
  checkpoint(): EngineCheckpoint {
    const b = this.inFlight;
    return { meta: this.meta, inFlight: b && { ...b, staged: b.stagedChunks ? b.outputsOut ?? null : null } };
  }

  async run(options: RunOptions = {}): Promise<RunSummary> {
    let batches = 0;
    let records = 0;
    const counted = (stats: BatchStats): void => {
      batches++;
      records += stats.records;
      this.progressAt = Date.now();
      this.metrics?.observe(stats);
      this.options.onBatch?.(stats);
    };
    this.metrics?.watchSize();
    try {
      const recovered = await this.recover();
      if (recovered) counted(await this.advance(recovered, true));
      this.recovered = true;
      const bounds: Bounds | undefined = options.ranges ? await rangeBounds(this.job.source, this.positions, options.ranges)
        : options.once ? { until: await this.latestOffsets() } : undefined;
      let caughtUp = false; // said once each time the loop goes idle
      while (!this.stopping && (options.maxBatches === undefined || batches < options.maxBatches)) {
        const batch = await this.planBatch(bounds);
        if (batch) {
          counted(await this.advance(batch, false));
          caughtUp = false;
        } else if (bounds) {
          break; // available-now, or the given ranges: everything there was to do is done
        } else {
          // Not while a batch fills up (minRecords, maxWaitMs): then there is lag, only too little of it.
          const noLag = Object.values(this.lag).every((n) => n === 0);
          if (noLag && !caughtUp) this.log.info({ lastCommitted: this.lastCommitted, positions: this.positions }, 'caught up, waiting for data');
          caughtUp = noLag;
          this.progressAt = Date.now();
          await this.idle();
          this.store!.assertHeld(); // woken after a freeze: the lock may have been taken meanwhile
        }
      }
      // A lock lost while idle stops the loop (onLockCompromised): that is exit 10, not a clean stop.
      this.store?.assertHeld();
      return { batches, records, lastCommitted: this.lastCommitted, positions: this.positions };
    } catch (err) {
      this.metrics?.failed();
      throw err;
    } finally {
      await this.metrics?.close();
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
    let view = await this.store.load();
    await this.crash('recovering');
    const used = await checkWitnesses(this.job, this.store!.dir, view, this.log);
    if (used !== undefined) {
      this.log.info({ lastCommitted: used }, `batch ids up to ${used} were used before the last reset (the source's marks say so): going on from ${used + 1}`);
      await this.store.skipBatchIds(used);
      view = { ...view, lastCommitted: used };
    }
    const needsEarliest = view.inFlight && !hasStagedOutputs(view.inFlight);
    const earliest = needsEarliest ? await this.job.source.offsets(view.inFlight!.ranges, 'earliest') : {};
    const decision = decideRecovery({
      dir: this.store.dir, view, fingerprint: this.fingerprint, acceptCodeChange: this.options.acceptCodeChange === true,
      earliest, format: FORMAT_VERSION, now: Date.now(), checkpointId: randomUUID(),
      job: {
        name: this.job.name, sourceId: this.job.source.id, strictCodeVersion: this.job.strictCodeVersion, onDataLoss: this.job.onDataLoss,
        sinks: sinkNames(this.job),
      },
    });
    for (const note of decision.notes) this.log.info({ lastCommitted: decision.lastCommitted }, note);
    if (decision.meta) await this.store.writeMeta(decision.meta);
    const meta = decision.meta ?? view.meta;
    this.meta = meta;
    this.checkpointId = meta?.checkpointId;
    this.lineage = meta?.checkpointId !== undefined ? { checkpoint: meta.checkpointId, resets: meta.resets.length } : undefined;
    this.positions = decision.resumeAt;
    this.lastCommitted = decision.lastCommitted;
    return decision.redeliver ?? decision.rerun;
  }

  private async latestOffsets(): Promise<OffsetMap> {
    return this.job.source.offsets(await this.job.source.partitions(), 'latest');
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
    const idle = this.idleInputs;
    if (idle && idle.latest === latestNow && idle.earliest === earliest && idle.positions === this.positions) return undefined;
    this.idleInputs = undefined;
    let latest = latestNow;
    if (bounds) {
      const capped: Record<string, number> = {};
      for (const [key, end] of Object.entries(bounds.until)) capped[key] = Math.min(end, latestNow[key] ?? end);
      latest = capped;
    }
    const waitedMs = bounds ? Infinity : Date.now() - this.lastBatchAt;
    const plan = planRanges({
      positions: this.positions, starting, earliest, latest, limits: this.job.limits, avgRecordBytes: this.avgRecordBytes ?? FIRST_BATCH_RECORD_BYTES,
      waitedMs, onDataLoss: this.job.onDataLoss, ...(this.job.targetMs !== undefined ? { maxRecords: this.batchSizer().size } : {}),
    });
    this.lag = lagAtPlan(latestNow, this.positions, starting);
    this.latestSeen = latestNow;
    if (plan.kind === 'wait') {
      // Short of minRecords: the batch is due when maxWaitMs has passed. Nothing at all: on new data.
      this.fillingMs = plan.available > 0 ? Math.max(1, this.job.limits.maxWaitMs - waitedMs) : undefined;
      if (plan.available === 0 && !bounds && fresh.length === 0) this.idleInputs = { latest: latestNow, earliest, positions: this.positions };
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
  /** Carries a batch from its current state to COMMITTED. */
  private async advance(batch: BatchRecord, recovered: boolean): Promise<BatchStats> {
    const store = this.store!;
    const timer = new PhaseTimer(batch.durations);
    this.inFlight = batch;
    if (recovered) this.log.info({ batch: batch.id, state: batch.state, ranges: batch.ranges }, `recovering batch ${batch.id} (${batch.state}): ${describeRanges(batch.ranges)}`);

    let staged = batch;
    let streams: Streams;
    let records = batch.recordsIn ?? 0;
    let bytesIn = batch.bytesIn ?? 0;
    if (hasStagedOutputs(batch)) {
      streams = await timer.time('read', () => store.readStagedOutputs(batch));
    } else {
      const read = await timer.time('read', () => this.read(batch.ranges));
      records = read.records.length;
      bytesIn = read.bytes;
      await this.crash('read');
      const result = await timer.time('transform', () => runTransform(this.job, read.records, { batchId: batch.id, ranges: batch.ranges }));
      read.records = []; // the input can be collected while the outputs are staged and delivered
      await this.crash('transformed');
      const stage = (r: TransformResult<T>): Promise<BatchRecord> => {
        const computed = streamsOf(r);
        streams = computed.streams;
        return store.stageBatch(
          { ...batch, fingerprint: this.fingerprint, recordsIn: records, bytesIn, outputsOut: computed.counts },
          this.job.stageOutputs ? streams : undefined,
        );
      };
      // Encoding finds an output it cannot give back unchanged at no extra pass; only then are all of them looked for.
      staged = await timer.time('stage', () => stage(result).catch((err: unknown) => {
        if (!(err instanceof UnstageableOutputError)) throw err;
        return stage(setAsideUnstageable(this.job, result, batch.id));
      }));
      this.inFlight = staged;
      await this.crash('staged');
    }

    const delivered = await timer.time('deliver', () => deliverBatch({ job: this.job, store, log: this.log, crash: this.crash, checkpointId: this.checkpointId }, staged, streams));
    staged = delivered.batch;

    const durations = timer.durations;
    const positions = advancePositions(this.positions, staged.ranges);
    await timer.time('commit', () => store.commitBatch({ ...staged, durations }, positions, staged.lost ?? []));
    this.positions = positions;
    this.lag = lagAfterCommit(this.lag, this.latestSeen, staged.ranges);
    this.lastCommitted = staged.id;
    this.inFlight = undefined;
    this.lastBatchAt = Date.now();
    await this.crash('committed');
    this.reporter.report(positions, this.lineage && formatMark({ ...this.lineage, batch: staged.id }));
    await this.crash('source-committed');

    if (this.job.targetMs !== undefined) {
      const ms = Object.values(durations).reduce((a, b) => a + b, 0);
      this.sizer = nextBatchSizer(this.batchSizer(), { records, ms }, this.job.targetMs, this.memoryCap());
    }

    const stats: BatchStats = {
      id: staged.id, ranges: staged.ranges, records, bytesIn, bytesOut: staged.stagedBytes ?? 0, outputs: delivered.outputs,
      deadLetters: delivered.deadLetters, recovered, durations, lag: this.lag,
    };
    this.log.info({ batch: stats.id, records, bytesIn, outputs: stats.outputs, bytesOut: stats.bytesOut, deadLetters: stats.deadLetters, ranges: staged.ranges, durations, recovered }, `batch ${stats.id} committed`);
    return stats;
  }


  private memoryCap(): number {
    return memoryRecordCap(getHeapStatistics(), this.avgRecordBytes ?? FIRST_BATCH_RECORD_BYTES);
  }

  private batchSizer(): BatchSizer {
    return (this.sizer ??= firstBatchSizer(this.memoryCap()));
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
    await this.reporter.drain();
    const closing: Array<Promise<unknown> | undefined> = [this.job.source.close(), ...this.job.sinks.map((s) => s.close?.())];
    if (this.job.deadLetterSink?.close) closing.push(this.job.deadLetterSink.close());
    const results = await Promise.allSettled(closing);
    for (const r of results) if (r.status === 'rejected') this.log.warn({ err: String(r.reason) }, 'closing a source or sink failed');
    if (this.store && !this.options.store) await this.store.close();
    this.lockHeld = false;
  }
}
