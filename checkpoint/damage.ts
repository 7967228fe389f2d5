// The one damage check, shared by `run`, `inspect` and `reset` so that they agree on
// every case: before 2026-11-30 inspect read every record and called a checkpoint with
// garbage in a table file DAMAGED, while run read only what recovery needs, started it
// and committed; with db/ deleted inspect said "no checkpoint" and run said damaged.
//
//   checkpointPlace(dir)  what is at the path: nothing yet, a checkpoint, or a wrong path / lost database
//   examineCheckpoint     reads every record (meta, state, batches, lost ranges, staged outputs)
//   assertUndamaged       the same, throwing CorruptCheckpointError on the first damage (run, reset)
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BadConfigError, CorruptCheckpointError, isTidemarkError } from './errors';
import type { BatchRecord, CheckpointMeta, CheckpointView, LostRange } from './model';
import type { CheckpointStore } from './store';

/** A file beside the database, written once the checkpoint's meta record is durable. */
export const MARKER = 'checkpoint.json';

export interface Damage {
  /** Which part: `leveldb`, `meta`, `state`, `batches`, `lost ranges`, `staged outputs`. */
  readonly part: string;
  readonly detail: string;
}

/**
 * What `dir` holds: `none` (nothing yet: a run creates a checkpoint there) or `checkpoint`
 * (a LevelDB directory). A path that is not a directory is a usage error; a checkpoint
 * whose database is gone or has lost its CURRENT file is damage, never "no checkpoint" — but
 * for a creation killed before its first write (only empty files, no marker).
 */
export function checkpointPlace(dir: string): 'none' | 'checkpoint' {
  const isDir = (path: string): boolean | undefined => {
    try {
      return statSync(path).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new BadConfigError(`The checkpoint path ${dir} runs through a file: give a directory.`);
      return undefined;
    }
  };
  if (isDir(dir) === false) throw new BadConfigError(`The checkpoint path ${dir} is a file, not a directory: give a directory (an empty or new one for a new checkpoint).`);
  const dbDir = join(dir, 'db');
  const db = isDir(dbDir);
  if (db === false) throw new BadConfigError(`${dbDir} is a file, not LevelDB's directory: ${dir} is not a checkpoint; give another directory.`);
  if (db === undefined) {
    if (existsSync(join(dir, MARKER))) throw new CorruptCheckpointError(dir, `its LevelDB directory ${dbDir} is missing, but ${MARKER} says a checkpoint was written here`);
    return 'none';
  }
  const files = readdirSync(dbDir);
  const written = existsSync(join(dir, MARKER));
  if (files.length === 0 && written) throw new CorruptCheckpointError(dir, `its LevelDB directory ${dbDir} is empty, but ${MARKER} says a checkpoint was written here`);
  if (files.length > 0 && !files.includes('CURRENT')) {
    // A process killed while LevelDB created the database leaves its first files empty and no
    // CURRENT (LevelDB writes it last), before any record and before the marker: nothing to lose,
    // and LevelDB creates the database again over them.
    if (!written && files.every((f) => statSync(join(dbDir, f)).size === 0)) return 'none';
    throw new CorruptCheckpointError(dir, 'the LevelDB directory has no CURRENT file (truncated?)');
  }
  return 'checkpoint';
}

export interface Examined {
  readonly damaged: readonly Damage[];
  readonly meta: CheckpointMeta | undefined;
  readonly view: CheckpointView | undefined;
  readonly batches: readonly BatchRecord[];
  readonly lost: readonly LostRange[];
  /** Lost ranges pruned beyond the newest RETAIN_HISTORY. */
  readonly lostPruned: number;
  /** Outputs staged per stream of the batch in flight (undefined: none staged, or unreadable). */
  readonly staged: Readonly<Record<string, number>> | undefined;
}

const detailOf = (err: unknown): string =>
  err instanceof CorruptCheckpointError ? err.detail : err instanceof Error ? err.message : String(err);

/** Reads every record of an open checkpoint; damage is collected, any other failure thrown. `stopAtFirst` skips the rest once one is found. */
export async function examineCheckpoint(store: CheckpointStore, options: { stopAtFirst?: boolean } = {}): Promise<Examined> {
  const damaged: Damage[] = [];
  const attempt = async <R>(part: string, work: () => Promise<R>): Promise<R | undefined> => {
    if (options.stopAtFirst && damaged.length > 0) return undefined;
    try {
      return await work();
    } catch (err) {
      if (isTidemarkError(err) && !(err instanceof CorruptCheckpointError)) throw err;
      damaged.push({ part, detail: detailOf(err) });
      return undefined;
    }
  };
  const meta = await attempt('meta', () => store.readMeta());
  const view = await attempt('state', () => store.load());
  const batches = (await attempt('batches', () => store.batches())) ?? [];
  const lost = (await attempt('lost ranges', () => store.lostRanges())) ?? [];
  const lostPruned = (await attempt('lost ranges', () => store.lostPruned())) ?? 0;
  // Every staged batch in flight (several when pipelined) is read: a damaged chunk of any stops the run before a sink write.
  let staged: Record<string, number> | undefined;
  for (const b of view?.flight ?? []) {
    if (b.state !== 'staged' || !b.stagedChunks) continue;
    const outputs = await attempt('staged outputs', () => store.readStagedOutputs(b));
    if (outputs && b === view?.inFlight) staged = Object.fromEntries(Object.entries(outputs).map(([sink, items]) => [sink, items.length]));
  }
  // LevelDB drops a corrupted write log silently when it opens: a checkpoint whose records
  // lived only there would look empty and be started afresh. The marker, written once the
  // meta record is durable, tells "never written" from "lost".
  if (damaged.length === 0 && meta === undefined && existsSync(join(store.dir, MARKER))) {
    damaged.push({ part: 'meta', detail: `${MARKER} says a checkpoint was written here, but LevelDB holds no records (a lost or corrupted write log?)` });
  }
  return { damaged, meta, view, batches, lost, lostPruned, staged };
}

/** For writers (run, reset): the checkpoint reads back whole, or CorruptCheckpointError names the first damage. */
export async function assertUndamaged(store: CheckpointStore): Promise<void> {
  const { damaged } = await examineCheckpoint(store, { stopAtFirst: true });
  const first = damaged[0];
  if (first) throw new CorruptCheckpointError(store.dir, first.detail);
}
