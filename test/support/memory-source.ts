// An in-memory partitioned log for model tests: append, grow partitions, trim.
import type { OffsetMap, PartitionRef, Range, ReportedPositions, Source, SourceChunk, SourceRecord } from 'tidemark';
import { partitionKey } from '../../checkpoint/model';
import { chunkBytes, sourceChunk } from '../../src/sources/chunk';

export class MemoryLog implements Source {
  readonly id: string;
  private readonly data: SourceRecord[][] = [];
  private readonly starts: number[] = [];

  constructor(readonly topic = 't', partitions = 1) {
    this.id = `memory:${topic}`;
    for (let p = 0; p < partitions; p++) this.addPartition();
  }

  addPartition(): void {
    this.data.push([]);
    this.starts.push(0);
  }

  /** Retention: offsets below `before` (at most the end) are gone. */
  trim(partition: number, before: number): void {
    this.starts[partition] = Math.max(this.starts[partition]!, Math.min(before, this.end(partition)));
  }

  get partitionCount(): number {
    return this.data.length;
  }

  append(partition: number, n: number): void {
    const list = this.data[partition]!;
    for (let i = 0; i < n; i++) {
      const offset = list.length;
      list.push({ topic: this.topic, partition, offset, key: null, value: Buffer.from(`${partition}:${offset}`), timestamp: offset });
    }
  }

  end(partition: number): number {
    return this.data[partition]!.length;
  }

  async partitions(): Promise<PartitionRef[]> {
    return this.data.map((_, partition) => ({ topic: this.topic, partition }));
  }

  async offsets(parts: readonly PartitionRef[], which: 'earliest' | 'latest'): Promise<OffsetMap> {
    return Object.fromEntries(parts.map((p) => [partitionKey(p), which === 'earliest' ? this.starts[p.partition]! : this.end(p.partition)]));
  }

  startingOffsets(parts: readonly PartitionRef[]): Promise<OffsetMap> {
    return this.offsets(parts, 'earliest');
  }

  async *read(ranges: readonly Range[]): AsyncIterable<SourceChunk> {
    for (const r of ranges) {
      if (r.from < this.starts[r.partition]! || r.until > this.end(r.partition)) throw new Error(`no offsets [${r.from}, ${r.until}) in ${r.partition}`);
      const records = this.data[r.partition]!.slice(r.from, r.until);
      yield sourceChunk(records, chunkBytes(records));
    }
  }

  async close(): Promise<void> {}
}

/** A MemoryLog that keeps the positions the engine reports outside the checkpoint, with their marks, as a Kafka group does. */
export class ReportingLog extends MemoryLog {
  readonly reported = new Map<string, { offset: number; metadata: string | null }>();

  async committed(positions: OffsetMap, mark?: string): Promise<void> {
    for (const [partition, offset] of Object.entries(positions)) this.reported.set(partition, { offset, metadata: mark ?? null });
  }

  async reportedPositions(parts: readonly PartitionRef[]): Promise<ReportedPositions> {
    const wanted = new Set(parts.map(partitionKey));
    return { where: 'the memory log', positions: [...this.reported].filter(([k]) => wanted.has(k)).map(([partition, r]) => ({ partition, ...r })) };
  }
}
