// The byte count a source's chunks carry (SourceChunk in src/contracts.ts): for every built-in
// source it is the chunk's keys plus values, and the engine's read (readRanges) takes it
// instead of counting each record again; a plain array from a user's source is counted.
import { embeddedLogSource, generatorSource, type Range, type Source, type SourceChunk, type SourceRecord } from 'tidemark';
import { readRanges, RecordSizes } from '../../src/batch-run';
import { toAnswer } from '../../src/kafka/consumer';
import type { FetchedBatch } from '../../src/kafka/fetch-hook';
import { PartitionBuffers } from '../../src/kafka/partition-buffer';
import { recordBytes } from '../../src/sources/chunk';
import { MemoryLog } from '../support/memory-source';
import { tempDir } from '../support/tmp';

const keysAndValues = (records: readonly SourceRecord[]): number => records.reduce((n, r) => n + (r.key?.length ?? 0) + (r.value?.length ?? 0), 0);

async function chunksOf(source: Source, ranges: readonly Range[]): Promise<SourceChunk[]> {
  const chunks: SourceChunk[] = [];
  for await (const chunk of source.read(ranges, new AbortController().signal)) chunks.push(chunk);
  return chunks;
}

function expectCarried(chunks: readonly SourceChunk[], records: number): void {
  expect(chunks.reduce((n, c) => n + c.length, 0)).toBe(records);
  for (const c of chunks) expect({ records: c.length, bytes: c.bytes }).toEqual({ records: c.length, bytes: keysAndValues(c) });
}

/** A source of given chunks, as a user writes one. */
function sourceOf(chunks: SourceChunk[]): Source {
  return {
    id: 'chunks', partitions: async () => [], offsets: async () => ({}), startingOffsets: async () => ({}), close: async () => {},
    async *read() {
      yield* chunks;
    },
  };
}

const record = (offset: number, key: string | null, value: string | null): SourceRecord => ({
  topic: 't', partition: 0, offset, key: key === null ? null : Buffer.from(key), value: value === null ? null : Buffer.from(value), timestamp: 0,
});

describe('the bytes a source chunk carries are its keys plus values', () => {
  const root = tempDir();

  it('embedded log: null and empty keys and values, multi-byte text, chunks of 10,000', async () => {
    const source = embeddedLogSource({ dir: `${root}/log`, partitions: 2 });
    const log = await source.log();
    await log.append([
      { key: null, value: null, partition: 0 }, { key: '', value: '', partition: 0 }, { key: 'kéy', value: 'välue ✓', partition: 0 },
      ...Array.from({ length: 12_345 }, (_, i) => ({ key: i % 3 === 0 ? null : `k${i}`, value: 'v'.repeat(i % 50), partition: 1 })),
    ]);
    expectCarried(await chunksOf(source, [{ topic: 'events', partition: 0, from: 0, until: 3 }, { topic: 'events', partition: 1, from: 5, until: 12_345 }]), 3 + 12_340);
  });

  it('generator source, over chunk boundaries', async () => {
    const source = generatorSource({ partitions: 2, size: 250, chunkSize: 100, value: (p, o) => Buffer.alloc((p * 7 + o) % 40) });
    expectCarried(await chunksOf(source, [{ topic: 'generated', partition: 1, from: 3, until: 250 }, { topic: 'generated', partition: 0, from: 0, until: 1 }]), 248);
  });

  it('the memory log of the tests', async () => {
    const log = new MemoryLog('m', 2);
    log.append(0, 30);
    log.append(1, 5);
    expectCarried(await chunksOf(log, [{ topic: 'm', partition: 0, from: 4, until: 30 }, { topic: 'm', partition: 1, from: 0, until: 5 }]), 31);
  });

  it('Kafka: what the partition buffer hands the reader, from fetched batches, as much as each take finds', () => {
    const buffers = new PartitionBuffers<SourceRecord>({ maxBufferedBytes: 1e9, readAheadBytes: 0 }, recordBytes, 96);
    const r: Range = { topic: 't', partition: 0, from: 0, until: 9 };
    buffers.joined({ t: [0] });
    buffers.activate(r);
    buffers.deliver(r);
    const fetch = (from: number, messages: Array<{ key: string | null; value: string | null }>): void => {
      const full = messages.map((m, i) => ({
        offset: String(from + i), key: m.key === null ? null : Buffer.from(m.key), value: m.value === null ? null : Buffer.from(m.value), timestamp: '1', attributes: 0, headers: {},
      }));
      const batch: FetchedBatch = {
        topic: 't', partition: 0, fetchedOffset: String(from), highWatermark: '100',
        messagesWithinOffset: full, rawMessages: full, messages: full, lastOffset: () => String(from + messages.length - 1),
      };
      buffers.fetched(toAnswer(batch));
    };
    const chunks: SourceChunk[] = [];
    fetch(0, [{ key: null, value: 'abc' }, { key: 'k', value: null }, { key: '', value: '' }]);
    chunks.push(buffers.take(r)); // all of the buffer
    fetch(3, [{ key: 'ключ', value: 'v' }, { key: null, value: null }, { key: 'k5', value: 'x'.repeat(300) }, { key: 'k6', value: 'y' }]);
    fetch(7, [{ key: 'k7', value: 'z' }, { key: 'k8', value: 'zz' }, { key: 'k9', value: 'past until' }]);
    chunks.push(buffers.take(r)); // part of it: k9 is beyond the range
    expectCarried(chunks, 9);
    expect(buffers.bufferedBytes).toBe(2 + 10 + 96); // what is left counts its key, its value and its overhead
  });
});

describe('readRanges takes the chunk\'s bytes', () => {
  const records = [record(0, 'k', 'value'), record(1, null, 'v'), record(2, 'key', null)];

  it('as the source counted them', async () => {
    const counted: SourceChunk = Object.assign(records.slice(0, 2), { bytes: 1_000 }); // not recounted: the source's number stands
    const read = await readRanges(sourceOf([counted, Object.assign(records.slice(2), { bytes: 3 })]), [], new RecordSizes());
    expect({ records: read.records, bytes: read.bytes }).toEqual({ records, bytes: 1_003 });
  });

  it('and counts a plain array (a source written before chunks carried bytes)', async () => {
    const sizes = new RecordSizes();
    const read = await readRanges(sourceOf([records.slice(0, 1), records.slice(1)]), [], sizes);
    expect({ records: read.records, bytes: read.bytes }).toEqual({ records, bytes: 6 + 1 + 3 });
    expect(sizes.average).toBe(10 / 3 + 64);
  });
});
