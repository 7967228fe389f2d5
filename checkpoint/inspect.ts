// What a checkpoint holds, as a plain data object: `tidemark inspect` formats it, scripts
// read it as JSON.
//
// Read-only: it never takes the lock, so it works beside a running daemon, and it reads a
// copy of the LevelDB files (openCheckpointCopy). On a damaged checkpoint it reports what
// it could read and what is damaged.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptCheckpointError, isTidemarkError } from './errors';
import { lockStatus, readLockState, type LockOwner } from './lock';
import { examineCheckpoint, type Damage } from './damage';
import type { BatchRecord, FingerprintEntry, GroupOwnership, LostRange, OffsetMap, ResetEntry } from './model';
import { FORMAT_VERSION, openCheckpointCopy, requireCheckpoint, sizeOnDisk, type CheckpointStore } from './store';

export interface InFlightReport extends BatchRecord {
  /** Outputs actually staged per stream, counted from the stored chunks (null: nothing staged). */
  readonly staged: Readonly<Record<string, number>> | null;
}

export interface InspectReport {
  readonly checkpoint: string;
  readonly ok: boolean;
  readonly damaged: readonly Damage[];
  /** The LevelDB files, listed when the checkpoint is damaged. */
  readonly files?: ReadonlyArray<{ readonly name: string; readonly bytes: number }>;
  readonly empty: boolean;
  readonly format: number | null;
  readonly formatSupported: boolean | null;
  readonly job: string | null;
  readonly source: string | null;
  readonly sinks: readonly string[] | null;
  readonly createdAt: number | null;
  readonly fingerprint: string | null;
  readonly fingerprints: readonly FingerprintEntry[];
  /** The newest RETAIN_HISTORY resets, oldest first. */
  readonly resets: readonly ResetEntry[];
  /** Older resets pruned from the history. */
  readonly resetsPruned: number;
  /** `held`: a live process holds the lock. `stale`: the lock is there but its owner is gone (killed); the next run takes it over. */
  readonly lock: { readonly held: boolean; readonly stale: boolean; readonly owner: LockOwner | null };
  readonly positions: OffsetMap | null;
  readonly lastCommitted: number | null;
  readonly inFlight: InFlightReport | null;
  /** The batches in flight after `inFlight` (pipelined, batch.maxInFlight > 1), in id order. */
  readonly alsoInFlight: readonly InFlightReport[];
  /** Committed batches, newest first (as many as `last` asks and retention kept). */
  readonly recentBatches: readonly BatchRecord[];
  /** The newest RETAIN_HISTORY lost ranges. */
  readonly lost: readonly LostRange[];
  /** Older lost ranges pruned from the checkpoint. */
  readonly lostPruned: number;
  /** Group mode: the partitions this checkpoint's daemon owned at its last assignment, and their epochs (null: never ran in group mode). */
  readonly ownership: GroupOwnership | null;
  readonly sizeOnDisk: number;
}

const detailOf = (err: unknown): string =>
  err instanceof CorruptCheckpointError ? err.detail : err instanceof Error ? err.message : String(err);

/** The LevelDB files and what is obviously wrong with them (for a checkpoint LevelDB cannot open). */
function examineFiles(dbDir: string): { files: Array<{ name: string; bytes: number }>; problems: string[] } {
  const files = readdirSync(dbDir).sort().flatMap((name) => {
    const st = statSync(join(dbDir, name), { throwIfNoEntry: false }); // a daemon may delete files meanwhile
    return st ? [{ name, bytes: st.size }] : [];
  });
  const problems: string[] = [];
  const current = files.find((f) => f.name === 'CURRENT');
  if (!current) {
    problems.push('CURRENT is missing (it names the MANIFEST, the list of the database\'s files)');
  } else {
    let manifest = '';
    try {
      manifest = readFileSync(join(dbDir, 'CURRENT'), 'utf8').trim();
    } catch { /* replaced meanwhile */ }
    if (!/^MANIFEST-\d+$/.test(manifest)) problems.push(`CURRENT does not name a MANIFEST (it holds ${JSON.stringify(manifest.slice(0, 40))})`);
    else if (!files.some((f) => f.name === manifest)) problems.push(`CURRENT names ${manifest}, which is missing`);
    else if (files.find((f) => f.name === manifest)!.bytes === 0) problems.push(`${manifest} is empty`);
  }
  for (const f of files) if (/\.(ldb|sst)$/.test(f.name) && f.bytes === 0) problems.push(`${f.name} is empty`);
  return { files, problems };
}

/** Everything `inspect` shows; never throws for damage, only for a directory that holds no checkpoint. */
export async function inspectCheckpoint(dir: string, last = 10): Promise<InspectReport> {
  // The damage run and reset refuse a checkpoint for is reported here, not thrown (checkpoint/damage.ts).
  let lostDatabase: CorruptCheckpointError | undefined;
  try {
    requireCheckpoint(dir);
  } catch (err) {
    if (!(err instanceof CorruptCheckpointError)) throw err;
    lostDatabase = err;
  }
  const dbDir = join(dir, 'db');
  const lock = lockStatus(await readLockState(dir));
  const damaged: Damage[] = [];
  const base = {
    checkpoint: dir, ok: true, damaged: [] as Damage[], empty: false, format: null, formatSupported: null, job: null, source: null, sinks: null, createdAt: null,
    fingerprint: null, fingerprints: [], resets: [], resetsPruned: 0, lock, positions: null, lastCommitted: null, inFlight: null, alsoInFlight: [],
    recentBatches: [], lost: [], lostPruned: 0, ownership: null, sizeOnDisk: await sizeOnDisk(dir),
  };
  if (lostDatabase && !existsSync(dbDir)) return { ...base, ok: false, damaged: [{ part: 'leveldb', detail: lostDatabase.detail }] };
  if (!lostDatabase && readdirSync(dbDir).length === 0) return { ...base, empty: true };

  let store: CheckpointStore;
  const { files, problems } = examineFiles(dbDir);
  try {
    if (lostDatabase) throw lostDatabase;
    // Beside a busy daemon a copy may be torn (a compaction deleted a file): copy again.
    store = await openCheckpointCopy(dir, lock.held ? 5 : 1);
  } catch (err) {
    if (isTidemarkError(err) && !(err instanceof CorruptCheckpointError)) throw err;
    damaged.push({ part: 'leveldb', detail: `cannot open the database: ${detailOf(err)}` });
    for (const p of problems) if (!detailOf(err).includes(p)) damaged.push({ part: 'leveldb', detail: p });
    return { ...base, ok: false, damaged, files };
  }
  try {
    const { damaged: found, meta, view, batches, lost, lostPruned, staged } = await examineCheckpoint(store);
    damaged.push(...found);
    const inFlight: InFlightReport | null = view?.inFlight ? { ...view.inFlight, staged: staged ?? null } : null;
    return {
      ...base,
      ok: damaged.length === 0,
      damaged,
      empty: meta === undefined && damaged.length === 0 && (view?.lastCommitted ?? 0) === 0,
      format: meta?.format ?? null,
      formatSupported: meta ? meta.format <= FORMAT_VERSION : null,
      job: meta?.job ?? null,
      source: meta?.source ?? null,
      sinks: meta?.sinks ?? null,
      createdAt: meta?.createdAt ?? null,
      fingerprint: meta?.fingerprint ?? null,
      fingerprints: meta?.fingerprints ?? [],
      resets: meta?.resets ?? [],
      resetsPruned: meta?.resetsPruned ?? 0,
      positions: view?.positions ?? null,
      lastCommitted: view?.lastCommitted ?? null,
      inFlight,
      alsoInFlight: (view?.flight ?? []).slice(1).map((b) => ({ ...b, staged: b.stagedChunks ? b.outputsOut ?? null : null })),
      recentBatches: batches.filter((b) => b.state === 'committed').slice(0, last),
      lost,
      lostPruned,
      ownership: (await store.readOwnership().catch(() => undefined)) ?? null,
    };
  } finally {
    await store.close();
  }
}
