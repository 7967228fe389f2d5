// What the engine tells about its batches and about itself: the stats of each committed
// batch (counts, phase durations, lag) for logs, metrics and progress; the status snapshot
// for health checks; and the summary a run returns.
import type { InFlightReport } from '../checkpoint/inspect';
import { partitionKey, type CheckpointMeta, type OffsetMap, type Range } from '../checkpoint/model';

/** The phases of a batch, in order, as `durations` names them. */
export const PHASES = ['plan', 'read', 'transform', 'stage', 'deliver', 'commit'] as const;

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
  /** Group mode: the partitions owned now (partition key → epoch); positions and lag hold only those. */
  readonly owned?: Readonly<Record<string, number>>;
}

/**
 * What a running engine holds of its checkpoint, from memory (the status page): the meta it
 * recovered with, and the batch in flight as `tidemark inspect` reports it.
 */
export interface EngineCheckpoint {
  readonly meta: CheckpointMeta | undefined;
  readonly inFlight: InFlightReport | undefined;
}

export interface RunSummary {
  readonly batches: number;
  readonly records: number;
  readonly lastCommitted: number;
  readonly positions: OffsetMap;
}

/** Milliseconds since `start` (a performance.now() reading), to 0.01 ms. */
export const elapsedMs = (start: number): number => Math.round((performance.now() - start) * 100) / 100;

/** The phase durations of one batch; a phase met twice (a redelivery's restage) adds up. */
export class PhaseTimer {
  readonly durations: Record<string, number>;

  /** `recorded`: what the batch carries already (its plan). */
  constructor(recorded: Readonly<Record<string, number>> | undefined) {
    this.durations = { ...recorded };
  }

  async time<R>(phase: string, work: () => Promise<R>): Promise<R> {
    const t = performance.now();
    try {
      return await work();
    } finally {
      this.durations[phase] = (this.durations[phase] ?? 0) + elapsedMs(t);
    }
  }
}

/** Records not yet processed at plan time: the source's ends minus the positions (or where new partitions start). */
export function lagAtPlan(latest: OffsetMap, positions: OffsetMap, starting: OffsetMap): OffsetMap {
  const lag: Record<string, number> = {};
  for (const [key, end] of Object.entries(latest)) lag[key] = Math.max(0, end - (positions[key] ?? starting[key] ?? end));
  return lag;
}

/** The lag after a commit: the committed ranges' partitions are behind the ends seen at plan time by what the ranges left. */
export function lagAfterCommit(lag: OffsetMap, latestSeen: OffsetMap, ranges: readonly Range[]): OffsetMap {
  const next: Record<string, number> = { ...lag };
  for (const r of ranges) {
    const end = latestSeen[partitionKey(r)];
    if (end !== undefined) next[partitionKey(r)] = Math.max(0, end - r.until);
  }
  return next;
}
