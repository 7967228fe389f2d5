// `tidemark inspect <dir>`: what a checkpoint holds, for people and (--json) for scripts.
//
// Read-only: it never takes the lock, so it works beside a running daemon, and it reads a
// copy of the LevelDB files (opening LevelDB in place writes to it: its own LOCK, a new
// log and manifest, even the repair of a damaged log). On a damaged checkpoint it reports
// what it could read and what is damaged, and exits 7.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { BadConfigError, CorruptCheckpointError, describeCause, ExitCode, isTidemarkError } from '../../checkpoint/errors';
import { describeOwner, isLocked, readLockOwner, type LockOwner } from '../../checkpoint/lock';
import type { BatchRecord, CheckpointMeta, FingerprintEntry, LostRange, OffsetMap, ResetEntry } from '../../checkpoint/model';
import { LevelKV } from '../../checkpoint/kv';
import { CheckpointStore, FORMAT_VERSION, sizeOnDisk } from '../../checkpoint/store';
import { describeRanges } from '../../recovery/decide';
import { parse, wholeNumberOption } from './args';

export interface Damage {
  /** Which part: `leveldb`, `meta`, `state`, `batches`, `lost ranges`, `staged outputs`. */
  readonly part: string;
  readonly detail: string;
}

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
  readonly resets: readonly ResetEntry[];
  /** `held`: a live process holds the lock. `stale`: the lock is there but its owner is gone (killed); the next run takes it over. */
  readonly lock: { readonly held: boolean; readonly stale: boolean; readonly owner: LockOwner | null };
  readonly positions: OffsetMap | null;
  readonly lastCommitted: number | null;
  readonly inFlight: InFlightReport | null;
  /** Committed batches, newest first (as many as `--last` asks and retention kept). */
  readonly recentBatches: readonly BatchRecord[];
  readonly lost: readonly LostRange[];
  readonly sizeOnDisk: number;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
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

/** Copies the LevelDB files (not its LOCK) to a temp directory; a daemon may delete files meanwhile, so retry. */
async function snapshot(dbDir: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const copy = await mkdtemp(join(tmpdir(), 'tidemark-inspect-'));
    try {
      await cp(dbDir, copy, { recursive: true, filter: (src) => basename(src) !== 'LOCK' });
      return copy;
    } catch (err) {
      await rm(copy, { recursive: true, force: true });
      if (attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/** Opens a copy of the checkpoint's database; a copy taken beside a busy daemon may be torn, so retry while one runs. */
async function openSnapshot(dir: string, live: boolean): Promise<{ store: CheckpointStore; copy: string }> {
  for (let attempt = 1; ; attempt++) {
    const copy = await snapshot(join(dir, 'db'));
    try {
      const kv = await LevelKV.open(copy, { readOnly: true });
      return { store: new CheckpointStore(kv, dir), copy };
    } catch (err) {
      await rm(copy, { recursive: true, force: true });
      if (!live || attempt >= 5) throw new CorruptCheckpointError(dir, describeCause(err).split(copy).join(join(dir, 'db')), { cause: err });
    }
  }
}

async function attempt<R>(damaged: Damage[], part: string, work: () => Promise<R>): Promise<R | undefined> {
  try {
    return await work();
  } catch (err) {
    if (isTidemarkError(err) && !(err instanceof CorruptCheckpointError)) throw err;
    damaged.push({ part, detail: detailOf(err) });
    return undefined;
  }
}

/** Everything `inspect` shows; never throws for damage, only for a directory that holds no checkpoint. */
export async function inspectCheckpoint(dir: string, last = 10): Promise<InspectReport> {
  const dbDir = join(dir, 'db');
  if (!existsSync(dbDir)) {
    throw new BadConfigError(`There is no checkpoint in ${dir} (no ${dbDir}): check the path.`);
  }
  const locked = await isLocked(dir).catch(() => false);
  const owner = locked ? (await readLockOwner(dir)) ?? null : null;
  const stale = owner !== null && owner.host === hostname() && !processExists(owner.pid);
  const held = locked && !stale;
  const lock = { held, stale, owner };
  const damaged: Damage[] = [];
  const base = {
    checkpoint: dir, ok: true, damaged: [] as Damage[], empty: false, format: null, formatSupported: null, job: null, source: null, sinks: null, createdAt: null,
    fingerprint: null, fingerprints: [], resets: [], lock, positions: null, lastCommitted: null, inFlight: null,
    recentBatches: [], lost: [], sizeOnDisk: await sizeOnDisk(dir),
  };
  if (readdirSync(dbDir).length === 0) return { ...base, empty: true };

  let store: CheckpointStore;
  let copy: string;
  const { files, problems } = examineFiles(dbDir);
  try {
    if (!files.some((f) => f.name === 'CURRENT')) throw new CorruptCheckpointError(dir, 'the LevelDB directory has no CURRENT file (truncated?)');
    ({ store, copy } = await openSnapshot(dir, held));
  } catch (err) {
    if (isTidemarkError(err) && !(err instanceof CorruptCheckpointError)) throw err;
    damaged.push({ part: 'leveldb', detail: `cannot open the database: ${detailOf(err)}` });
    for (const p of problems) if (!detailOf(err).includes(p)) damaged.push({ part: 'leveldb', detail: p });
    return { ...base, ok: false, damaged, files };
  }
  try {
    const meta: CheckpointMeta | undefined = await attempt(damaged, 'meta', () => store.readMeta());
    const view = await attempt(damaged, 'state', () => store.load());
    const batches = (await attempt(damaged, 'batches', () => store.batches())) ?? [];
    const lost = (await attempt(damaged, 'lost ranges', () => store.lostRanges())) ?? [];
    let inFlight: InFlightReport | null = null;
    if (view?.inFlight) {
      const b = view.inFlight;
      let staged: Record<string, number> | null = null;
      if (b.state === 'staged' && b.stagedChunks) {
        const outputs = await attempt(damaged, 'staged outputs', () => store.readStagedOutputs(b));
        if (outputs) staged = Object.fromEntries(Object.entries(outputs).map(([sink, items]) => [sink, items.length]));
      }
      inFlight = { ...b, staged };
    }
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
      positions: view?.positions ?? null,
      lastCommitted: view?.lastCommitted ?? null,
      inFlight,
      recentBatches: batches.filter((b) => b.state === 'committed').slice(0, last),
      lost,
    };
  } finally {
    await store.close();
    await rm(copy, { recursive: true, force: true });
  }
}

const iso = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '?' : new Date(ms).toISOString());

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

function formatDurations(d: Readonly<Record<string, number>> | undefined): string {
  if (!d) return '';
  const total = Object.values(d).reduce((a, b) => a + b, 0);
  return `${total} ms (${Object.entries(d).map(([p, ms]) => `${p} ${ms}`).join(', ')})`;
}

function formatCounts(c: Readonly<Record<string, number>> | undefined | null): string {
  return c ? Object.entries(c).map(([k, n]) => `${k} ${n}`).join(', ') : '-';
}

export function formatReport(r: InspectReport): string {
  const out: string[] = [];
  out.push(`checkpoint ${r.checkpoint}${r.ok ? '' : ' — DAMAGED'}`);
  if (!r.ok) {
    out.push('damaged:');
    for (const d of r.damaged) out.push(`  ${d.part}: ${d.detail}`);
    if (r.files) {
      out.push(`LevelDB files in ${join(r.checkpoint, 'db')}:`);
      for (const f of r.files) out.push(`  ${f.name.padEnd(20)} ${formatBytes(f.bytes)}`);
    }
    out.push('Nothing was changed, and tidemark never starts such a checkpoint from scratch silently.');
    out.push('Restore the directory from a backup, or start over deliberately with a new --checkpoint directory.');
    if (r.job === null && r.positions === null) return `${out.join('\n')}\n`;
    out.push('');
    out.push('what could still be read:');
  }
  if (r.empty) {
    out.push('empty: no batch has run yet');
    out.push(`size on disk ${formatBytes(r.sizeOnDisk)}`);
    return `${out.join('\n')}\n`;
  }
  const format = r.format === null ? '?' : `${r.format}${r.formatSupported ? '' : ` (newer than this build, which reads format ${FORMAT_VERSION} and older)`}`;
  out.push(`  job      ${r.job ?? '?'} (format ${format}, created ${iso(r.createdAt)})`);
  out.push(`  source   ${r.source ?? '?'}`);
  out.push(`  sinks    ${r.sinks?.join(', ') ?? '?'}`);
  out.push(`  daemon   ${r.lock.held ? `running (${describeOwner(r.lock.owner ?? undefined)})`
    : r.lock.stale ? `not running (its last owner, ${describeOwner(r.lock.owner ?? undefined)}, is gone: the next run takes the lock over)`
      : 'not running (the lock is free)'}`);
  out.push(`  size     ${formatBytes(r.sizeOnDisk)} on disk`);
  out.push(`fingerprint ${r.fingerprint ?? '?'}`);
  for (const f of r.fingerprints) out.push(`  ${iso(f.since)}  ${f.fingerprint}  ${f.note}`);
  out.push(`positions (last committed batch ${r.lastCommitted ?? '?'}):`);
  const positions = Object.entries(r.positions ?? {});
  if (positions.length === 0) out.push('  none yet');
  for (const [p, o] of positions) out.push(`  ${p.padEnd(24)} ${o}`);
  const b = r.inFlight;
  if (!b) {
    out.push('in flight: nothing');
  } else {
    out.push(`in flight: batch ${b.id}, ${b.state} (planned ${iso(b.plannedAt)}${b.stagedAt ? `, staged ${iso(b.stagedAt)}` : ''}), fingerprint ${b.fingerprint}`);
    out.push(`  ranges   ${describeRanges(b.ranges)}`);
    if (b.state === 'staged') {
      out.push(`  records  ${b.recordsIn ?? '?'} read`);
      out.push(b.staged
        ? `  staged   ${formatCounts(b.staged)} (${formatBytes(b.stagedBytes ?? 0)}): redelivered as staged on restart`
        : `  staged   no outputs stored (stageOutputs: false; counted ${formatCounts(b.outputsOut)}): recomputed from its ranges on restart`);
    } else {
      out.push('  staged   nothing yet: re-run with exactly these ranges on restart');
    }
  }
  out.push(`lost ranges: ${r.lost.length === 0 ? 'none' : ''}`);
  for (const l of r.lost) out.push(`  ${describeRanges([l])} in batch ${l.batchId}, ${iso(l.at)}`);
  out.push(`resets: ${r.resets.length === 0 ? 'none' : ''}`);
  for (const x of r.resets) {
    const changed = Object.keys({ ...x.before, ...x.after }).filter((k) => x.before[k] !== x.after[k]);
    out.push(`  ${iso(x.at)}  to ${x.to ?? '?'}: ${changed.length === 0 ? 'no position changed' : changed.map((k) => `${k} ${x.before[k] ?? '-'} → ${x.after[k]}`).join(', ')}${x.discarded ? `; discarded batch ${x.discarded}` : ''}`);
  }
  out.push(`last ${r.recentBatches.length} committed batches:`);
  for (const c of r.recentBatches) {
    if (c.discarded) {
      out.push(`  ${String(c.id).padStart(6)}  ${iso(c.committedAt)}  discarded by reset  ${describeRanges(c.ranges)}`);
      continue;
    }
    out.push(`  ${String(c.id).padStart(6)}  ${iso(c.committedAt)}  ${c.recordsIn ?? 0} records → ${formatCounts(c.outputsOut)}  ${formatDurations(c.durations)}  ${describeRanges(c.ranges)}`);
  }
  return `${out.join('\n')}\n`;
}

export async function inspectCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, last: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new BadConfigError('Which checkpoint? Usage: tidemark inspect <dir> [--json] [--last N].');
  const last = wholeNumberOption(values, 'last', 1, {}) ?? 10;
  const report = await inspectCheckpoint(dir, last);
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? ExitCode.ok : ExitCode.corruptCheckpoint;
}
