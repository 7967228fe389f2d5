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

export function fileSink<T>(options: FileSinkOptions<T>): Sink<T> {
  const name = options.name ?? 'files';
  const format = options.format ?? ((o: T) => JSON.stringify(o));
  const dir = join(options.dir, name);
  return {
    name,
    async write(batch: SinkBatch<T>) {
      let text = '';
      for (const o of batch.outputs) text += `${format(o)}\n`;
      await writeFileAtomic(join(dir, batchFileName(batch.id)), text);
    },
  };
}
