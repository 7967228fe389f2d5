// Opening a job's checkpoint for a run: take the lock, read it, cross-check it against the
// witnesses outside, decide recovery (recovery/decide.ts) and record the decision's meta.
// Both engines start here (src/engine.ts, src/group/engine.ts).
import { randomUUID } from 'node:crypto';
import { BadConfigError } from '../checkpoint/errors';
import type { CheckpointMeta } from '../checkpoint/model';
import { FORMAT_VERSION, openCheckpoint, type CheckpointStore } from '../checkpoint/store';
import { decideRecovery, hasStagedOutputs, type RecoveryDecision } from '../recovery/decide';
import type { CrashPoint } from './crash-seam';
import type { Job } from './job';
import type { Logger } from './log';
import { checkWitnesses } from './witnesses';

/** The names of a job's sinks, the dead-letter sink included, as its checkpoint records them. */
export function sinkNames(job: Pick<Job<unknown>, 'sinks' | 'deadLetterSink'>): string[] {
  return [...job.sinks, ...(job.deadLetterSink ? [job.deadLetterSink] : [])].map((s) => s.name);
}

export interface OpenJobCheckpoint {
  readonly dir: string | undefined;
  /** An open store to use instead of opening `dir` (tests). */
  readonly store?: CheckpointStore;
  readonly fingerprint: string;
  readonly acceptCodeChange: boolean;
  readonly log: Logger;
  readonly crash: CrashPoint;
  readonly onLockCompromised: (err: Error) => void;
  /**
   * Ask the source's progress marks and the sinks' ledgers whether the checkpoint lost synced
   * writes (src/witnesses.ts). Not in group mode: there the group's offsets and the ledgers
   * hold every owner's progress, and batch ids are each checkpoint's own.
   */
  readonly crossCheck: boolean;
}

export interface OpenedCheckpoint {
  readonly store: CheckpointStore;
  readonly decision: RecoveryDecision;
  readonly meta: CheckpointMeta | undefined;
}

export async function openJobCheckpoint<T>(job: Job<T>, o: OpenJobCheckpoint): Promise<OpenedCheckpoint> {
  if (!o.store) {
    if (o.dir === undefined) throw new BadConfigError('No checkpoint directory: pass checkpointDir to the Engine, or set checkpoint.dir in the job (tidemark run: --checkpoint).');
    const opened = await openCheckpoint(o.dir, { retainBatches: job.retainBatches, onLockCompromised: o.onLockCompromised });
    // Refused after opening (another job's checkpoint, changed code, a witness ahead): closed
    // here, lock released, as the engine's close() would have — it never got the store.
    return decide(job, opened, o).catch(async (err: unknown) => {
      await opened.close().catch(() => undefined);
      throw err;
    });
  }
  return decide(job, o.store, o);
}

async function decide<T>(job: Job<T>, store: CheckpointStore, o: OpenJobCheckpoint): Promise<OpenedCheckpoint> {
  let view = await store.load();
  await o.crash('recovering');
  const used = o.crossCheck ? await checkWitnesses(job, store.dir, view, o.log) : undefined;
  if (used !== undefined) {
    o.log.info({ lastCommitted: used }, `batch ids up to ${used} were used before the last reset (the source's marks say so): going on from ${used + 1}`);
    await store.skipBatchIds(used);
    view = { ...view, lastCommitted: used };
  }
  const rerun = view.flight.filter((b) => !hasStagedOutputs(b)).flatMap((b) => b.ranges);
  const earliest = rerun.length > 0 ? await job.source.offsets(rerun, 'earliest') : {};
  const decision = decideRecovery({
    dir: store.dir, view, fingerprint: o.fingerprint, acceptCodeChange: o.acceptCodeChange,
    earliest, format: FORMAT_VERSION, now: Date.now(), checkpointId: randomUUID(),
    job: {
      name: job.name, sourceId: job.source.id, strictCodeVersion: job.strictCodeVersion, onDataLoss: job.onDataLoss,
      sinks: sinkNames(job),
    },
  });
  for (const note of decision.notes) o.log.info({ lastCommitted: decision.lastCommitted }, note);
  if (decision.meta) await store.writeMeta(decision.meta);
  return { store, decision, meta: decision.meta ?? view.meta };
}
