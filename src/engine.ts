// The engine: plan → read → transform → stage → deliver → commit, pipelined.
//
// A batch moves through the states of the checkpoint (docs/protocol.md). `advance()`
// takes a batch in whatever state it is and carries it to COMMITTED; a batch recovered
// from the checkpoint enters it exactly like a freshly planned one, so there is no
// second, recovery-only execution path.
//
// Up to batch.maxInFlight batches are in flight (DESIGN.md "Pipelining"): while batch N
// is delivered and committed, N+1 is planned from N's untils, read, transformed and
// staged. Deliveries and COMMITs run one batch after the other in id order (`chain`), so
// each sink sees batches in id order and positions move only by COMMIT; the CPU work of
// N+1 overlaps the sinks' and the checkpoint's syncs of N. The whole protocol is this file, the pure
// decisions (src/planner.ts, recovery/decide.ts), the writes (checkpoint/store.ts) and
// the delivery to sinks (src/delivery.ts).
import { getHeapStatistics } from 'node:v8';
import type { BatchRecord, OffsetMap, PartitionRef, Range } from '../checkpoint/model';
import { parsePartitionKey, partitionKey } from '../checkpoint/model';
import { formatMark, type ProgressMark } from '../recovery/crosscheck';
import { describeRanges } from '../recovery/decide';
import { elapsedMs, lagAfterCommit, lagAtPlan, type BatchStats, type RunSummary } from './batch-stats';
import { finishBatch, prepareBatch, runBatch, type BatchOutcome, type BatchRunContext, type PreparedBatch } from './batch-run';
import { firstBatchSizer, memoryRecordCap, nextBatchSizer, type BatchSizer } from './batch-size';
import { EngineBase, type EngineOptions } from './engine-base';
import { FinishQueue } from './finish-queue';
import type { Job } from './job';
import { Metrics } from './metrics';
import { advancePositions, planRanges } from './planner';
import { PositionReporter } from './position-report';
import { rangeBounds, type Bounds } from './run-bounds';

export type { BatchStats, EngineCheckpoint, EngineStatus, RunSummary } from './batch-stats';
export { sinkNames } from './job-checkpoint';
export { EngineBase, jobFingerprint, type EngineOptions } from './engine-base';

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

export class Engine<T> extends EngineBase<T> {
  private lastBatchAt = Date.now();
  /** batch.targetMs: the records the next batch may hold (src/batch-size.ts). */
  private sizer: BatchSizer | undefined;
  private readonly metrics: Metrics | undefined;
  private readonly reporter: PositionReporter;
  /** Set by a plan that waits for more records: ms until the batch is due anyway (maxWaitMs). */
  private fillingMs: number | undefined;
  /**
   * The inputs of the last plan that found nothing at all to read. A source that answers
   * with the very same objects while nothing changed (the embedded log) then costs no plan:
   * over 10,000 partitions, planning each 200 ms poll took most of the idle CPU (2026-11).
   * Same inputs, nothing to read: the plan cannot differ (waitedMs matters only with records).
   */
  private idleInputs: { readonly latest: OffsetMap; readonly earliest: OffsetMap; readonly positions: OffsetMap } | undefined;
  /** The checkpoint's id, handed to the sinks (meta.checkpointId). */
  private checkpointId: string | undefined;
  /** The checkpoint's id and reset count, sent with each batch's positions to the source (recovery/crosscheck.ts). */
  private lineage: Omit<ProgressMark, 'batch'> | undefined;
  /** The batches planned and not yet committed, in id order (at most batch.maxInFlight). */
  private flight: BatchRecord[] = [];

  constructor(job: Job<T>, options: EngineOptions = {}) {
    super(job, options);
    this.reporter = new PositionReporter(job.source, this.log);
    const checkpointDir = options.checkpointDir ?? job.checkpointDir;
    this.metrics = options.registry && checkpointDir !== undefined
      ? new Metrics({ engine: this, checkpointDir, job: job.name, registry: options.registry }) : undefined;
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
    const finishes = new FinishQueue();
    try {
      const recovered = await this.recover();
      for (const batch of recovered) counted(await this.advance(batch, true));
      this.recovered = true;
      const bounds: Bounds | undefined = options.ranges ? await rangeBounds(this.job.source, this.positions, options.ranges)
        : options.once ? { until: await this.latestOffsets() } : undefined;
      let caughtUp = false; // said once each time the loop goes idle
      let planned = recovered.length; // maxBatches counts the recovered ones, all of which are finished
      while (!this.stopping && !finishes.failed && (options.maxBatches === undefined || planned < options.maxBatches)) {
        if (!await finishes.room(this.flight.length, this.job.maxInFlight)) continue;
        const batch = await this.planBatch(bounds);
        if (batch && finishes.failed) break; // the batch before failed while this one was planned: it stays PLANNED
        if (batch) {
          planned++;
          const prepared = await this.prepare(batch);
          finishes.push(async () => counted(await this.finish(prepared, false)));
          caughtUp = false;
        } else if (this.flight.length > 0) {
          await finishes.drained(); // nothing more to plan now: the batches in flight commit before the loop decides it is idle or done
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
      await finishes.settle();
      // A lock lost while idle stops the loop (onLockCompromised): that is exit 10, not a clean stop.
      this.store?.assertHeld();
      return { batches, records, lastCommitted: this.lastCommitted, positions: this.positions };
    } catch (err) {
      const reported = await finishes.failureOr(err);
      this.metrics?.failed();
      throw reported;
    } finally {
      await this.metrics?.close();
      await this.close();
    }
  }

  /** Opens and locks the checkpoint, decides recovery, records the decision's meta; returns the batches in flight, in id order. */
  private async recover(): Promise<BatchRecord[]> {
    const { decision, meta } = await this.openCheckpoint(true);
    this.checkpointId = meta?.checkpointId;
    this.lineage = meta?.checkpointId !== undefined ? { checkpoint: meta.checkpointId, resets: meta.resets.length } : undefined;
    const first = decision.redeliver ?? decision.rerun;
    return first ? [first, ...decision.later] : [];
  }

  /** Where the next batch starts: the committed positions moved over the batches in flight. */
  private planFrom(): OffsetMap {
    return this.flight.length === 0 ? this.positions : advancePositions(this.positions, this.flight.flatMap((b) => b.ranges));
  }


  private async latestOffsets(): Promise<OffsetMap> {
    return this.job.source.offsets(await this.job.source.partitions(), 'latest');
  }

  /** Plans the next batch and writes it as PLANNED; undefined when there is nothing to do yet. */
  private async planBatch(bounds: Bounds | undefined): Promise<BatchRecord | undefined> {
    const started = performance.now();
    const parts: PartitionRef[] = bounds ? Object.keys(bounds.until).map(parsePartitionKey) : await this.job.source.partitions();
    const from = this.planFrom();
    const fresh = parts.filter((p) => from[partitionKey(p)] === undefined);
    const [latestNow, earliest, starting] = await Promise.all([
      this.job.source.offsets(parts, 'latest'),
      this.job.source.offsets(parts, 'earliest'),
      fresh.length === 0 ? Promise.resolve<OffsetMap>({})
        : bounds?.from ? Promise.resolve<OffsetMap>(Object.fromEntries(fresh.map((p) => [partitionKey(p), bounds.from![partitionKey(p)]!])))
          : this.job.source.startingOffsets(fresh),
    ]);
    const idle = this.idleInputs;
    if (idle && idle.latest === latestNow && idle.earliest === earliest && idle.positions === from) return undefined;
    this.idleInputs = undefined;
    let latest = latestNow;
    if (bounds) {
      const capped: Record<string, number> = {};
      for (const [key, end] of Object.entries(bounds.until)) capped[key] = Math.min(end, latestNow[key] ?? end);
      latest = capped;
    }
    const waitedMs = bounds ? Infinity : Date.now() - this.lastBatchAt;
    const plan = planRanges({
      positions: from, starting, earliest, latest, limits: this.job.limits, avgRecordBytes: this.sizes.average ?? FIRST_BATCH_RECORD_BYTES,
      waitedMs, onDataLoss: this.job.onDataLoss, ...(this.job.targetMs !== undefined ? { maxRecords: this.batchSizer().size } : {}),
    });
    this.lag = lagAtPlan(latestNow, this.positions, starting);
    this.latestSeen = latestNow;
    if (plan.kind === 'wait') {
      // Short of minRecords: the batch is due when maxWaitMs has passed. Nothing at all: on new data.
      this.fillingMs = plan.available > 0 ? Math.max(1, this.job.limits.maxWaitMs - waitedMs) : undefined;
      if (plan.available === 0 && !bounds && fresh.length === 0) this.idleInputs = { latest: latestNow, earliest, positions: from };
      return undefined;
    }
    for (const r of plan.lost) this.log.warn({ lost: r }, `data loss: ${partitionKey(r)} [${r.from}, ${r.until}) is no longer in the source; skipped under onDataLoss 'skip'`);
    const batch: BatchRecord = {
      id: this.lastCommitted + this.flight.length + 1, state: 'planned', ranges: plan.ranges, fingerprint: this.fingerprint, plannedAt: Date.now(),
      ...(plan.lost.length > 0 ? { lost: plan.lost } : {}),
    };
    await this.store!.planBatch(batch);
    this.flight.push(batch);
    await this.crash('planned');
    return { ...batch, durations: { plan: elapsedMs(started) } };
  }

  private batchContext(): BatchRunContext<T> {
    return {
      job: this.job, store: this.store!, log: this.log, crash: this.crash, fingerprint: this.fingerprint, checkpointId: this.checkpointId, sizes: this.sizes,
      onStaged: (staged) => void (this.inFlight?.id === staged.id && (this.inFlight = staged)), // the status page shows the oldest
    };
  }

  /** Carries a recovered batch from its current state to COMMITTED, alone. */
  private async advance(batch: BatchRecord, recovered: boolean): Promise<BatchStats> {
    if (recovered) this.log.info({ batch: batch.id, state: batch.state, ranges: batch.ranges }, `recovering batch ${batch.id} (${batch.state}): ${describeRanges(batch.ranges)}`);
    this.inFlight = batch;
    const done = await runBatch(this.batchContext(), batch, this.positions);
    return this.committed(done, recovered);
  }

  /** Reads, transforms and stages a planned batch while the batches before it are delivered. */
  private async prepare(batch: BatchRecord): Promise<PreparedBatch> {
    this.inFlight ??= batch;
    return prepareBatch(this.batchContext(), batch);
  }

  /** Delivers and commits a prepared batch: called in id order, after the batch before it committed. */
  private async finish(prepared: PreparedBatch, recovered: boolean): Promise<BatchStats> {
    this.inFlight = prepared.batch;
    return this.committed(await finishBatch(this.batchContext(), prepared, this.positions), recovered);
  }

  /** What follows a COMMIT: positions, lag, the source's report, the next batch's size, the stats. */
  private async committed(done: BatchOutcome, recovered: boolean): Promise<BatchStats> {
    const staged = done.batch;
    const { records, bytesIn, durations, delivered } = done;
    this.positions = done.positions;
    this.lag = lagAfterCommit(this.lag, this.latestSeen, staged.ranges);
    this.lastCommitted = staged.id;
    this.flight = this.flight.filter((b) => b.id > staged.id);
    this.inFlight = this.flight[0];
    this.lastBatchAt = Date.now();
    this.reporter.report(done.positions, this.lineage && formatMark({ ...this.lineage, batch: staged.id }));
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
    return memoryRecordCap(getHeapStatistics(), this.sizes.average ?? FIRST_BATCH_RECORD_BYTES);
  }

  private batchSizer(): BatchSizer {
    return (this.sizer ??= firstBatchSizer(this.memoryCap()));
  }

  /**
   * Waits for the next plan: until the batch being filled is due (maxWaitMs), or — when
   * there was nothing to read — until the source has new records; at most pollIntervalMs.
   */
  private async idle(): Promise<void> {
    if (this.stopping) return; // stop() came while the plan was in flight: nothing to wake us
    const filling = this.fillingMs;
    const ms = Math.min(this.job.pollIntervalMs, filling ?? Infinity);
    await this.waitAtMost(ms, (signal) => (filling === undefined ? [this.job.source.waitForData?.(ms, signal)] : []));
  }

  private async close(): Promise<void> {
    await this.reporter.drain();
    await this.closeAll(() => this.job.source.close());
  }
}
