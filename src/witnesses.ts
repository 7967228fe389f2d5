// The witnesses of a checkpoint's progress outside it — the source's progress marks and the
// sinks' ledgers — asked at start; recovery/crosscheck.ts decides whether the checkpoint lost
// synced writes. This module is the I/O at the edge of that pure decision.
import { CorruptCheckpointError, isTidemarkError, type ErrorCode } from '../checkpoint/errors';
import { parsePartitionKey, partitionKey, type CheckpointView, type PartitionRef } from '../checkpoint/model';
import { crossCheck, idsUsedBeforeReset, type ReportedPosition } from '../recovery/crosscheck';
import type { Job } from './job';
import type { Logger } from './log';

const REFUSALS: ReadonlySet<ErrorCode> = new Set(['TIDEMARK_AUTH_FAILED', 'TIDEMARK_TLS_FAILED', 'TIDEMARK_NOT_AUTHORIZED']);

/**
 * Stops when the outside already holds work the checkpoint does not: the source's progress
 * marks or a sink's ledger ahead of it (recovery/crosscheck.ts decides). Returns the batch
 * id to go on after when a reset followed such a loss. A witness that
 * cannot be asked is skipped with a warning: it is a check, the checkpoint stays the truth.
 */
export async function checkWitnesses<T>(job: Job<T>, dir: string, view: CheckpointView, log: Logger): Promise<number | undefined> {
  const ask = async <R>(what: string, f: () => Promise<R>): Promise<R | undefined> => {
    try {
      return await f();
    } catch (err) {
      // A refusal (credentials, TLS, an ACL) is configuration to fix, not a witness out of reach.
      if (isTidemarkError(err) && REFUSALS.has(err.code)) throw err;
      log.warn({ err: (err as Error).message }, `cross-check at start: could not read ${what}; not checked`);
      return undefined;
    }
  };
  const source = job.source;
  // Every partition the source has, not only those the checkpoint knows: a lost COMMIT may
  // have been the first batch of a partition added since, the only one its mark names.
  const partitions = async (): Promise<PartitionRef[]> => {
    const known = new Map(Object.keys(view.positions).map((key) => [key, parsePartitionKey(key)]));
    for (const p of await source.partitions()) known.set(partitionKey(p), p);
    return [...known.values()];
  };
  const reported = view.meta?.checkpointId !== undefined && source.reportedPositions
    ? await ask('the positions reported to the source', async () => {
      const parts = await partitions();
      return parts.length > 0 ? source.reportedPositions!(parts) : undefined;
    }) : undefined;
  const delivered: Record<string, number> = {};
  for (const sink of [...job.sinks, ...(job.deadLetterSink ? [job.deadLetterSink] : [])]) {
    if (!sink.lastDelivered) continue;
    const last = await ask(`sink ${sink.name}'s ledger`, () => sink.lastDelivered!(job.name));
    if (last !== undefined) delivered[sink.name] = last;
  }
  const positions: ReportedPosition[] = reported ? [...reported.positions] : [];
  const used = idsUsedBeforeReset(view, positions);
  const lost = crossCheck({ dir: dir, view: used === undefined ? view : { ...view, lastCommitted: used }, reportedTo: reported?.where, reported: positions, delivered });
  if (lost) throw new CorruptCheckpointError(dir, lost.detail);
  return used;
}
