// The file sink: one file per batch, `<dir>/<name>/batch-<id>.jsonl`, replaced atomically.
// A second delivery of a batch rewrites the same file with the same outputs: harmless.
import { join } from 'node:path';
import type { Sink, SinkBatch } from '../contracts';
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

/** The file's text in pieces of about 1 MiB: a batch is never held in memory a second time as one string. */
function* lines<T>(outputs: readonly T[], format: (output: T) => string): Generator<string> {
  let text = '';
  for (const o of outputs) {
    text += `${format(o)}\n`;
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
      await writeFileAtomic(join(dir, batchFileName(batch.id)), lines(batch.outputs, format));
    },
  };
}
