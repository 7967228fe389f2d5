// Issue 14, "the second core", measured: the Kafka source's reading (kafkajs's fetch decoding,
// the largest area of row 3's profile) moved to a worker thread. Not production code: a bench
// prototype behind `node-row.ts --read-worker`.
//
// The worker runs the real `kafkaSource(...).read(ranges)` and posts each chunk as one
// transferred ArrayBuffer (no copy across threads): per record its partition, offset,
// timestamp, key and value lengths, then the key and value bytes. The main thread makes the
// `SourceRecord`s over that buffer (key and value are views into it). Headers are not carried
// (the bench topics have none): a record with headers fails the read.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Range, Source, SourceChunk, SourceRecord } from '../../src/contracts';
import { kafkaSource, type KafkaSourceOptions } from '../../src/sources/kafka';
import { registerKafkaCodecs } from '../../src/kafka/codecs';
import { sourceChunk } from '../../src/sources/chunk';

type ToWorker = { type: 'read'; ranges: readonly Range[] } | { type: 'more' } | { type: 'close' };
type FromWorker =
  | { type: 'chunk'; topics: string[]; count: number; bytes: number; buf: ArrayBuffer }
  | { type: 'end' } | { type: 'error'; message: string } | { type: 'closed' };

/** Chunks the worker may post before the main thread asks for more: a read never runs a whole batch ahead. */
const CREDIT = 4;
const HEAD = 8 + 8 + 4 + 4 + 4 + 4; // offset, timestamp, partition, topic index, key length, value length

function pack(records: readonly SourceRecord[]): { topics: string[]; buf: ArrayBuffer; bytes: number } {
  const topics: string[] = [];
  const topicIndex = new Map<string, number>();
  let data = 0;
  for (const r of records) {
    if (r.headers && Object.keys(r.headers).length > 0) throw new Error('read-worker: records with headers are not carried');
    data += (r.key?.length ?? 0) + (r.value?.length ?? 0);
  }
  const buf = new ArrayBuffer(records.length * HEAD + data);
  const view = new DataView(buf);
  const bytes = new Uint8Array(buf);
  let at = 0;
  let body = records.length * HEAD;
  for (const r of records) {
    let t = topicIndex.get(r.topic);
    if (t === undefined) { t = topics.length; topics.push(r.topic); topicIndex.set(r.topic, t); }
    view.setFloat64(at, r.offset, true);
    view.setFloat64(at + 8, r.timestamp, true);
    view.setInt32(at + 16, r.partition, true);
    view.setInt32(at + 20, t, true);
    view.setInt32(at + 24, r.key === null ? -1 : r.key.length, true);
    view.setInt32(at + 28, r.value === null ? -1 : r.value.length, true);
    at += HEAD;
    if (r.key !== null) { bytes.set(r.key, body); body += r.key.length; }
    if (r.value !== null) { bytes.set(r.value, body); body += r.value.length; }
  }
  return { topics, buf, bytes: data };
}

function unpack(topics: readonly string[], count: number, bytes: number, ab: ArrayBuffer): SourceChunk {
  const view = new DataView(ab);
  const buf = Buffer.from(ab);
  const records: SourceRecord[] = new Array(count);
  let body = count * HEAD;
  for (let i = 0, at = 0; i < count; i++, at += HEAD) {
    const kl = view.getInt32(at + 24, true);
    const vl = view.getInt32(at + 28, true);
    const key = kl < 0 ? null : buf.subarray(body, body += kl);
    const value = vl < 0 ? null : buf.subarray(body, body += vl);
    records[i] = {
      topic: topics[view.getInt32(at + 20, true)]!, partition: view.getInt32(at + 16, true),
      offset: view.getFloat64(at, true), key, value, timestamp: view.getFloat64(at + 8, true),
    };
  }
  return sourceChunk(records, bytes);
}

/** `source` with its `read` done by a worker thread running its own kafkaSource of `options` (the script is this file's bundle). */
export function readInWorker<S extends Source>(source: S, options: KafkaSourceOptions, script: string): S {
  // The worker's source must not share the job's consumer group with the main thread's.
  const worker = new Worker(script, { workerData: { ...options, groupId: `${options.groupId}-read-worker` } });
  worker.unref();
  let busy = false;
  const wrapped: S = Object.create(source) as S;
  Object.assign(wrapped, {
    read(ranges: readonly Range[], signal: AbortSignal): AsyncIterable<SourceChunk> {
      return (async function* () {
        if (busy) throw new Error('read-worker: one read at a time');
        busy = true;
        const queue: FromWorker[] = [];
        let wake: (() => void) | undefined;
        const onMessage = (m: FromWorker): void => { queue.push(m); wake?.(); };
        worker.on('message', onMessage);
        worker.ref();
        try {
          worker.postMessage({ type: 'read', ranges } satisfies ToWorker);
          for (;;) {
            if (signal.aborted) throw signal.reason;
            const m = queue.shift();
            if (m === undefined) { await new Promise<void>((r) => { wake = r; }); wake = undefined; continue; }
            if (m.type === 'end') return;
            if (m.type === 'error') throw new Error(`read-worker: ${m.message}`);
            if (m.type === 'chunk') {
              worker.postMessage({ type: 'more' } satisfies ToWorker);
              yield unpack(m.topics, m.count, m.bytes, m.buf);
            }
          }
        } finally {
          worker.off('message', onMessage);
          worker.unref();
          busy = false;
        }
      })();
    },
    async close() {
      worker.ref();
      await new Promise<void>((resolve) => {
        worker.once('exit', () => resolve());
        worker.postMessage({ type: 'close' } satisfies ToWorker);
      });
      await source.close();
    },
  });
  return wrapped;
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  registerKafkaCodecs();
  const source = kafkaSource(workerData as KafkaSourceOptions);
  let credit = CREDIT;
  let more: (() => void) | undefined;
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  port.on('message', (m: ToWorker) => {
    if (m.type === 'more') { credit++; more?.(); return; }
    if (m.type === 'close') { void source.close().finally(() => { post({ type: 'closed' }); process.exit(0); }); return; }
    void (async () => {
      try {
        for await (const chunk of source.read(m.ranges, new AbortController().signal)) {
          if (chunk.length === 0) continue;
          while (credit <= 0) await new Promise<void>((r) => { more = r; });
          more = undefined;
          credit--;
          const { topics, buf, bytes } = pack(chunk);
          post({ type: 'chunk', topics, count: chunk.length, bytes, buf }, [buf]);
        }
        post({ type: 'end' });
      } catch (err) {
        post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
}
