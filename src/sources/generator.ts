// The generator source: the record at (partition, offset) is a pure function of both,
// so tests and benchmarks can check any output without storing the input.
import { createHash } from 'node:crypto';
import type { OffsetMap, PartitionRef, Range, Source, SourceRecord } from '../contracts';
import { partitionKey } from '../../checkpoint/model';
import { recordBytes, sourceChunk } from './chunk';

export interface GeneratorOptions {
  readonly topic?: string;
  readonly partitions: number;
  /** Records per partition now; a function lets the end grow over time. */
  readonly size: number | ((partition: number) => number);
  /** Log start per partition (default 0): offsets below it are "deleted by retention". */
  readonly earliest?: (partition: number) => number;
  /** Value bytes of the record (default: a small JSON object). */
  readonly value?: (partition: number, offset: number) => Buffer;
  readonly startingOffsets?: 'earliest' | 'latest';
  /** Records per yielded chunk (default 10,000). */
  readonly chunkSize?: number;
}

export function generatedValue(partition: number, offset: number): Buffer {
  const h = createHash('sha1').update(`${partition}:${offset}`).digest('hex').slice(0, 12);
  return Buffer.from(JSON.stringify({ p: partition, o: offset, h }));
}

export function generatorSource(options: GeneratorOptions): Source & { record(partition: number, offset: number): SourceRecord } {
  const topic = options.topic ?? 'generated';
  const size = typeof options.size === 'function' ? options.size : () => options.size as number;
  const earliest = options.earliest ?? (() => 0);
  const value = options.value ?? generatedValue;
  const chunkSize = options.chunkSize ?? 10_000;
  const record = (partition: number, offset: number): SourceRecord => ({
    topic, partition, offset, key: Buffer.from(`k${offset % 97}`), value: value(partition, offset), timestamp: 1_700_000_000_000 + offset,
  });
  const offsets = async (parts: readonly PartitionRef[], which: 'earliest' | 'latest'): Promise<OffsetMap> =>
    Object.fromEntries(parts.map((p) => [partitionKey(p), which === 'earliest' ? earliest(p.partition) : size(p.partition)]));
  return {
    id: `generator:${topic}`,
    record,
    async partitions() {
      return Array.from({ length: options.partitions }, (_, partition) => ({ topic, partition }));
    },
    offsets,
    startingOffsets: (parts) => offsets(parts, options.startingOffsets ?? 'earliest'),
    async *read(ranges: readonly Range[]) {
      for (const r of ranges) {
        if (r.from < earliest(r.partition) || r.until > size(r.partition)) {
          throw new Error(`generator ${topic}/${r.partition} has no offsets [${r.from}, ${r.until})`);
        }
        for (let o = r.from; o < r.until; o += chunkSize) {
          const chunk: SourceRecord[] = [];
          let bytes = 0;
          for (let i = o; i < Math.min(r.until, o + chunkSize); i++) {
            const rec = record(r.partition, i);
            chunk.push(rec);
            bytes += recordBytes(rec);
          }
          yield sourceChunk(chunk, bytes);
        }
      }
    },
    async close() {},
  };
}
