// The file sink: one file per batch, `<dir>/<name>/batch-<id>.jsonl`, replaced atomically.
// A second delivery of a batch rewrites the same file with the same outputs: harmless.
//
// The directory belongs to one checkpoint: the first delivery writes OWNER_FILE (the
// checkpoint's id, atomically) and a write from another checkpoint is refused. Before
// 2026-11-30 a new checkpoint pointed at a directory another had filled silently replaced
// its batch-1… files.
//
// Group mode (a batch with `owner`, docs/scale-out.md): several daemons share the directory,
// so there is no directory owner. A write is one partition's range and its file is named by
// it, `part-<topic>-<partition>-<from>-<until>.jsonl`, published with link(2), which never
// replaces a file: a range already there is a duplicate (a replay by the new owner, or a
// late write by the old one) and is left as it is. `claim` records the owner's epoch as a
// marker file per (partition, epoch), created, never rewritten, so claims never undo each
// other; a write whose epoch is older than the newest marker writes nothing
// (PartitionFencedError). A file system has no compare-and-swap: a claim that lands between
// a write's check and its link does not stop that write. The link rule makes such a late
// write harmless: its range is the planned range the new owner re-runs (the group refused
// the zombie's later plans), and whichever of the two links first is the only copy.
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PartitionOwner, Sink, SinkBatch } from '../contracts';
import { sketch } from '../../checkpoint/faithful';
import { PartitionFencedError, SinkLedgerMismatchError, SinkRejectedError, type RejectedRow } from '../errors';
import { publishFileOnce, syncDir, writeFileAtomic } from '../../checkpoint/fs-atomic';
import { ownedRange } from './owned';
import type { LedgerEntry } from '../../recovery/handoff';

/** The marker of the checkpoint that owns a file sink's directory. */
export const OWNER_FILE = '.tidemark-checkpoint.json';

interface Owner {
  readonly checkpoint: string;
  readonly job?: string;
}

/** Records the batch's checkpoint as the directory's owner, or refuses a batch of another checkpoint. */
export async function claim(dir: string, sink: string, batch: SinkBatch<unknown>): Promise<void> {
  if (batch.checkpoint === undefined) return; // a library user's Engine over a store without meta: nothing to compare
  const path = join(dir, OWNER_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    const owner: Owner = { checkpoint: batch.checkpoint, ...(batch.job !== undefined ? { job: batch.job } : {}) };
    await writeFileAtomic(path, `${JSON.stringify(owner)}\n`);
    return;
  }
  let owner: Partial<Owner> | undefined;
  try {
    owner = JSON.parse(text) as Partial<Owner>;
  } catch {
    owner = undefined;
  }
  if (owner?.checkpoint === batch.checkpoint) return;
  throw new SinkLedgerMismatchError(sink, batch.id, `its directory ${dir} belongs to another checkpoint ` +
    `(${path} names ${owner?.checkpoint === undefined ? 'no readable id' : `checkpoint ${owner.checkpoint}${owner.job ? ` of job ${owner.job}` : ''}`}; this one is ${batch.checkpoint}), ` +
    'and its batch files would be overwritten');
}

export interface FileSinkOptions<T> {
  readonly dir: string;
  /** Stable sink name (default `files`); also the sub-directory. */
  readonly name?: string;
  /** One line per output (default JSON.stringify). */
  readonly format?: (output: T) => string;
}

export function batchFileName(id: number): string {
  return `batch-${id}.jsonl`;
}

/** Group mode: the file of one partition's range [from, until). */
export function partFileName(topic: string, partition: number, from: number, until: number): string {
  return `part-${topic}-${partition}-${from}-${until}.jsonl`;
}

/** Group mode: the directory of a partition's claim markers, one empty file `epoch-<n>` per claim. */
export const CLAIMS_DIR = '.tidemark-claims';
const claimsOf = (dir: string, p: { readonly topic: string; readonly partition: number }): string => join(dir, CLAIMS_DIR, `${p.topic}-${p.partition}`);

/** The epochs that claimed the partition (none: never claimed). */
async function claimedEpochs(claims: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(claims);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.map((n) => /^epoch-(\d+)$/.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
}

/** Throws PartitionFencedError when an epoch newer than the owner's claimed the partition; returns the epochs claimed. */
async function refuseStale(claims: string, sink: string, owner: PartitionOwner, delivered?: number): Promise<number[]> {
  const epochs = await claimedEpochs(claims);
  const newest = Math.max(-1, ...epochs);
  if (newest > owner.epoch) throw new PartitionFencedError(`fileSink ${sink}`, owner.topic, owner.partition, owner.epoch, newest, delivered);
  return epochs;
}

/** The end of the newest range of the partition's files (the names say it), undefined when it has none. */
async function deliveredUntil(dir: string, p: { readonly topic: string; readonly partition: number }): Promise<number | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const prefix = partFileName(p.topic, p.partition, 0, 0).replace(/0-0\.jsonl$/, '');
  let until: number | undefined;
  for (const name of names) {
    // Exactly `<from>-<until>.jsonl` after the prefix: topic `t` partition 1 is not topic `t-1` partition 5.
    const m = name.startsWith(prefix) ? /^\d+-(\d+)\.jsonl$/.exec(name.slice(prefix.length)) : null;
    if (m) until = Math.max(until ?? 0, Number(m[1]));
  }
  return until;
}

/**
 * Records that `owner.epoch` owns the partition (as recovery/handoff.ts claimLedger), or throws when a newer epoch has;
 * returns what the directory held before: the newest epoch claimed and the end of the ranges written.
 */
async function claimPartition(dir: string, sink: string, owner: PartitionOwner): Promise<LedgerEntry | undefined> {
  const claims = claimsOf(dir, owner);
  const until = await deliveredUntil(dir, owner);
  const epochs = await refuseStale(claims, sink, owner, until);
  await mkdir(claims, { recursive: true });
  await (await open(join(claims, `epoch-${owner.epoch}`), 'a')).close();
  await syncDir(claims);
  // Older markers say nothing the newest does not (a concurrent newer claim's marker is kept).
  for (const e of epochs) if (e < owner.epoch) await rm(join(claims, `epoch-${e}`), { force: true });
  return epochs.length === 0 && until === undefined ? undefined : { epoch: Math.max(-1, ...epochs), ...(until === undefined ? {} : { until }) };
}
/**
 * Every output `format` throws on (JSON.stringify: a BigInt, a cycle), from `from` on: the
 * staged values come back unchanged, so it would throw on every redelivery too — a
 * rejection (onSinkError decides), not a failure to retry.
 */
export function unwritable<T>(sink: string, batchId: number, outputs: readonly T[], format: (output: T) => string, from: number): SinkRejectedError {
  const rows: RejectedRow[] = [];
  for (let index = from; index < outputs.length; index++) {
    try {
      format(outputs[index]!);
    } catch (err) {
      rows.push({ index, output: sketch(outputs[index]), reason: `the file's format cannot write it: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  return new SinkRejectedError(sink, batchId, rows);
}

/** The file's text in pieces of about 1 MiB: a batch is never held in memory a second time as one string. */
export function* lines<T>(outputs: readonly T[], format: (output: T) => string, rejected: (from: number) => Error): Generator<string> {
  let text = '';
  for (let i = 0; i < outputs.length; i++) {
    let line: string;
    try {
      line = format(outputs[i]!);
    } catch {
      throw rejected(i); // nothing is written: writeFileAtomic removes its temp file
    }
    text += `${line}\n`;
    if (text.length >= 1 << 20) {
      yield text;
      text = '';
    }
  }
  if (text !== '') yield text;
}

export function fileSink<T>(options: FileSinkOptions<T>): Sink<T> {
  const name = options.name ?? 'files';
  const format = options.format ?? ((o: T) => JSON.stringify(o));
  const dir = join(options.dir, name);
  let claimed: string | undefined;
  const rejectedFrom = (batch: SinkBatch<T>) => (from: number): Error => unwritable(name, batch.id, batch.outputs, format, from);
  return {
    name,
    async write(batch: SinkBatch<T>) {
      if (batch.owner) {
        const { owner, from, until } = ownedRange(`fileSink ${name}`, batch, batch.owner);
        await refuseStale(claimsOf(dir, owner), name, owner);
        await publishFileOnce(join(dir, partFileName(owner.topic, owner.partition, from, until)), lines(batch.outputs, format, rejectedFrom(batch)), `e${owner.epoch}`);
        return;
      }
      if (batch.checkpoint !== claimed) {
        await claim(dir, name, batch);
        claimed = batch.checkpoint; // checked once per process, not per batch
      }
      await writeFileAtomic(join(dir, batchFileName(batch.id)), lines(batch.outputs, format, rejectedFrom(batch)));
    },
    async claim(claim) {
      return claimPartition(dir, name, claim);
    },
  };
}
