// The file sink: one file per batch, `<dir>/<name>/batch-<id>.jsonl`, replaced atomically.
// A second delivery of a batch rewrites the same file with the same outputs: harmless.
//
// The directory belongs to one checkpoint: the first delivery writes OWNER_FILE (the
// checkpoint's id, atomically) and a write from another checkpoint is refused. Before
// 2026-11-30 a new checkpoint pointed at a directory another had filled silently replaced
// its batch-1… files.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Sink, SinkBatch } from '../contracts';
import { sketch } from '../../checkpoint/faithful';
import { SinkLedgerMismatchError, SinkRejectedError, type RejectedRow } from '../errors';
import { writeFileAtomic } from '../../checkpoint/fs-atomic';

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
  return {
    name,
    async write(batch: SinkBatch<T>) {
      if (batch.checkpoint !== claimed) {
        await claim(dir, name, batch);
        claimed = batch.checkpoint; // checked once per process, not per batch
      }
      await writeFileAtomic(join(dir, batchFileName(batch.id)), lines(batch.outputs, format, (from) => unwritable(name, batch.id, batch.outputs, format, from)));
    },
  };
}
