// The file sink: one file per batch, `<dir>/<name>/batch-<id>.jsonl`, replaced atomically.
// A second delivery of a batch rewrites the same file with the same outputs: harmless.
import { join } from 'node:path';
import type { Sink, SinkBatch } from '../contracts';
import { sketch } from '../../checkpoint/faithful';
import { SinkRejectedError, type RejectedRow } from '../errors';
import { writeFileAtomic } from '../../checkpoint/fs-atomic';

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
function unwritable<T>(sink: string, batchId: number, outputs: readonly T[], format: (output: T) => string, from: number): SinkRejectedError {
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
function* lines<T>(outputs: readonly T[], format: (output: T) => string, rejected: (from: number) => Error): Generator<string> {
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
  return {
    name,
    async write(batch: SinkBatch<T>) {
      await writeFileAtomic(join(dir, batchFileName(batch.id)), lines(batch.outputs, format, (from) => unwritable(name, batch.id, batch.outputs, format, from)));
    },
  };
}
