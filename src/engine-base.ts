// What both engines share as daemons (src/engine.ts, src/group/engine.ts): opening the job's
// checkpoint under its lock, stopping after the batch in flight, and the status snapshot that
// metrics, health checks and progress read.
import type { Registry } from 'prom-client';
import type { BatchRecord, CheckpointMeta, OffsetMap } from '../checkpoint/model';
import type { CheckpointStore } from '../checkpoint/store';
import type { BatchStats, EngineCheckpoint, EngineStatus } from './batch-stats';
import { RecordSizes } from './batch-run';
import type { CrashPoint } from './crash-seam';
import type { Job } from './job';
import { openJobCheckpoint, type OpenedCheckpoint } from './job-checkpoint';
import { silentLogger, type Logger } from './log';

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
  /** Group mode: this daemon's `group.instance.id` (static membership, docs/scale-out.md). */
  readonly instanceId?: string;
}

/** The fingerprint a job's checkpoint records: its `codeVersion` when it sets one, else the hash of its code. */
export function jobFingerprint(job: Pick<Job<unknown>, 'codeVersion'>, codeHash: string | undefined): string {
  return job.codeVersion !== undefined ? `codeVersion:${job.codeVersion}` : codeHash ?? 'unversioned';
}


/** The state and the steps both engines have; each runs its own loop. */
export abstract class EngineBase<T> {
  protected store: CheckpointStore | undefined;
  protected positions: OffsetMap = {};
  protected lastCommitted = 0;
  protected stopping = false;
  /** Ends the idle wait at once (stop()). */
  protected wake: (() => void) | undefined;
  /** Measured bytes per record (key + value + overhead). */
  protected readonly sizes = new RecordSizes();
  protected lag: OffsetMap = {};
  /** The source's ends as of the last plan. */
  protected latestSeen: OffsetMap = {};
  protected lockHeld = false;
  protected progressAt: number | undefined;
  /** The checkpoint's meta as recovery left it, and the batch between PLANNED and COMMITTED (the status page). */
  protected meta: CheckpointMeta | undefined;
  protected inFlight: BatchRecord | undefined;
  protected readonly log: Logger;
  protected readonly crash: CrashPoint;
  readonly fingerprint: string;
  /** True once recovery is done (for /readyz). */
  recovered = false;

  constructor(readonly job: Job<T>, protected readonly options: EngineOptions = {}) {
    this.log = options.logger ?? silentLogger;
    this.crash = options.crashPoint ?? (() => {});
    this.fingerprint = jobFingerprint(job, options.fingerprint);
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

  /** Waits `ms` at most; stop() and any of `wakers` (handed the wait's abort signal) end it sooner. */
  protected async waitAtMost(ms: number, wakers: (signal: AbortSignal) => ReadonlyArray<Promise<void> | undefined>): Promise<void> {
    const controller = new AbortController();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.wake = wake;
      for (const w of wakers(controller.signal)) w?.then(wake, wake);
    });
    controller.abort();
    this.wake = undefined;
  }

  /**
   * Closes the source (`closeSource`: each engine's own order), the sinks and the checkpoint,
   * releasing its lock; a failure to close one is logged and the others are still closed.
   */
  protected async closeAll(closeSource: () => Promise<void>): Promise<void> {
    const results = await Promise.allSettled([closeSource(), ...this.job.sinks.map((s) => s.close?.()), this.job.deadLetterSink?.close?.()]);
    for (const r of results) if (r.status === 'rejected') this.log.warn({ err: String(r.reason) }, 'closing the source, a sink or the group membership failed');
    if (this.store && !this.options.store) await this.store.close();
    this.lockHeld = false;
  }

  /** Opens and locks the checkpoint, decides recovery, records the decision's meta; a lost lock stops the loop. */
  protected async openCheckpoint(crossCheck: boolean): Promise<OpenedCheckpoint> {
    const opened = await openJobCheckpoint(this.job, {
      dir: this.options.checkpointDir ?? this.job.checkpointDir, store: this.options.store, fingerprint: this.fingerprint,
      acceptCodeChange: this.options.acceptCodeChange === true, log: this.log, crash: this.crash, crossCheck,
      onLockCompromised: (err) => {
        this.lockHeld = false;
        this.log.error({ err: err.message }, 'checkpoint lock compromised: stopping before the next write');
        this.stop();
      },
    });
    this.store = opened.store;
    this.meta = opened.meta;
    this.lockHeld = true;
    this.positions = opened.decision.resumeAt;
    this.lastCommitted = opened.decision.lastCommitted;
    return opened;
  }
}
