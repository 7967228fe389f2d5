// The Kafka sink's records: an output as the record it is produced as (its key, value,
// headers and lineage), and a batch's outputs sent within the open transaction.
//
// Produce requests hold at most `maxRequestBytes` of records. Uncompressed, the records go
// straight into one record batch per partition (src/kafka/record-batch.ts), partitioned here
// by the sink's partitioner, and reach the broker through src/kafka/produce-hook.ts; the
// next request is built while the previous one is on its way. Compressed, kafkajs encodes
// the messages.
import * as zlib from 'node:zlib';
import { CompressionTypes, type ICustomPartitioner, type Message, type PartitionMetadata, type Producer } from 'kafkajs';
import { BadConfigError } from '../../checkpoint/errors';
import type { SourceRecord } from '../contracts';
import { registerKafkaCodecs } from '../kafka/codecs';
import { batchMessage } from '../kafka/produce-hook';
import { RecordBatchBuilder } from '../kafka/record-batch';

/** One record to produce. An output of this shape is produced as it is; any other output as `{ value: JSON.stringify(output) }`. */
export interface KafkaMessageOut {
  readonly value: Buffer | string | null;
  readonly key?: Buffer | string | null;
  readonly headers?: Readonly<Record<string, Buffer | string | undefined>>;
  /** Default: the sink's `topic`. */
  readonly topic?: string;
  /** Default: chosen by the partitioner (by key; no key: sticky round-robin). */
  readonly partition?: number;
  /** Milliseconds since the epoch; default: the broker's or producer's time. */
  readonly timestamp?: number;
  /** The record this one derives from: sent as lineage headers (`lineage` option). */
  readonly source?: { readonly topic: string; readonly partition: number; readonly offset: number };
}

export type KafkaCompression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

/** A record to forward as it is (key, value, headers), with its lineage; `change` replaces fields. */
export function forwardRecord(record: SourceRecord, change: Partial<KafkaMessageOut> = {}): KafkaMessageOut {
  return {
    key: record.key, value: record.value, ...(record.headers ? { headers: record.headers } : {}),
    source: { topic: record.topic, partition: record.partition, offset: record.offset }, ...change,
  };
}

const COMPRESSION: Record<KafkaCompression, CompressionTypes> = {
  none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD,
};

function isMessage(o: unknown): o is KafkaMessageOut {
  if (typeof o !== 'object' || o === null || !('value' in o)) return false;
  const v = (o as { value: unknown }).value;
  return v === null || typeof v === 'string' || Buffer.isBuffer(v);
}

/** How the sink makes records of its outputs: these options of KafkaSinkOptions. */
export interface RecordOptions<T> {
  /** The topic of a record that names none. */
  readonly topic: string;
  readonly message?: (output: T) => KafkaMessageOut;
  readonly lineage?: boolean;
  readonly compression?: KafkaCompression;
  readonly maxRequestBytes?: number;
}

type Transaction = Awaited<ReturnType<Producer['transaction']>>;

/** What the sender asks of its sink: the partitioner, and a topic's partitions as the cluster has them now. */
export interface Partitioning {
  readonly partitioner: ICustomPartitioner;
  readonly partitionsOf: (topic: string) => Promise<PartitionMetadata[]>;
}

/** Sends a batch's outputs within the open transaction `tx`. */
export type OutputSender<T> = (tx: Transaction, outputs: readonly T[], batchId: number) => Promise<void>;

/** The sender of `options`, checked (a BadConfigError for a compression this Node cannot write). */
export function outputSender<T>(where: string, options: RecordOptions<T>, partitioning: Partitioning): OutputSender<T> {
  const compression = options.compression ?? 'none';
  if (!(compression in COMPRESSION)) throw new BadConfigError(`${where}: compression must be one of ${Object.keys(COMPRESSION).join(', ')}; got ${JSON.stringify(compression)}.`);
  if (compression === 'zstd' && typeof (zlib as unknown as { zstdCompressSync?: unknown }).zstdCompressSync !== 'function') {
    throw new BadConfigError(`${where}: compression 'zstd' needs Node ≥ 22.15 (node:zlib zstd) to write; this is Node ${process.versions.node}. Use lz4, snappy or gzip.`);
  }
  if (compression !== 'none' && compression !== 'gzip') registerKafkaCodecs();
  const toMessage = options.message ?? ((o: T): KafkaMessageOut => (isMessage(o) ? o : { value: JSON.stringify(o) }));
  const lineage = options.lineage !== false;
  const maxRequestBytes = options.maxRequestBytes ?? 512 * 1024;

  function toKafka(o: T, batchId: number): { topic: string; message: Message; headers: Array<[string, Buffer | string]>; bytes: number; timestamp: number | undefined } {
    const m = toMessage(o);
    const headers: Array<[string, Buffer | string]> = [];
    if (m.headers) for (const k in m.headers) if (m.headers[k] !== undefined) headers.push([k, m.headers[k]!]);
    if (lineage) {
      headers.push(['tidemark.batch', String(batchId)]);
      if (m.source) {
        headers.push(['tidemark.source.topic', m.source.topic], ['tidemark.source.partition', String(m.source.partition)], ['tidemark.source.offset', String(m.source.offset)]);
      }
    }
    const message: Message = { key: m.key ?? null, value: m.value, headers: Object.fromEntries(headers) };
    if (m.partition !== undefined) message.partition = m.partition;
    if (m.timestamp !== undefined) message.timestamp = String(m.timestamp);
    let bytes = 24 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
    for (const [k, v] of headers) bytes += k.length + v.length + 4;
    return { topic: m.topic ?? options.topic, message, headers, bytes, timestamp: m.timestamp };
  }

  /** Compressed: kafkajs's messages, in chunks of at most maxRequestBytes. */
  async function sendMessages(tx: Transaction, outputs: readonly T[], batchId: number): Promise<void> {
    let chunk = new Map<string, Message[]>();
    let chunkBytes = 0;
    const flush = async (): Promise<void> => {
      if (chunkBytes === 0 && chunk.size === 0) return;
      await tx.sendBatch({ topicMessages: [...chunk].map(([topic, messages]) => ({ topic, messages })), compression: COMPRESSION[compression], acks: -1 });
      chunk = new Map();
      chunkBytes = 0;
    };
    for (const o of outputs) {
      const { topic, message, bytes } = toKafka(o, batchId);
      if (chunkBytes > 0 && chunkBytes + bytes > maxRequestBytes) await flush();
      let list = chunk.get(topic);
      if (!list) chunk.set(topic, (list = []));
      list.push(message);
      chunkBytes += bytes;
    }
    await flush();
  }

  const partition = partitioning.partitioner();

  /** Uncompressed: a record batch per partition, built here, in requests of at most maxRequestBytes. */
  async function sendBatches(tx: Transaction, outputs: readonly T[], batchId: number): Promise<void> {
    const now = Date.now();
    const metadata = new Map<string, PartitionMetadata[]>();
    /** topic → partition → its batch in the request being built */
    let open = new Map<string, Map<number, RecordBatchBuilder>>();
    let openBytes = 0;
    let inFlight: Promise<unknown> | undefined;
    const send = async (): Promise<void> => {
      const topicMessages = [...open].map(([topic, builders]) => ({
        topic, messages: [...builders].map(([p, builder]) => batchMessage(p, builder.seal())) as unknown as Message[],
      }));
      open = new Map();
      openBytes = 0;
      await inFlight; // one request at a time: the next one is built while it is on its way
      inFlight = tx.sendBatch({ topicMessages, acks: -1 });
      inFlight.catch(() => {}); // awaited by the next send or at the end
    };
    try {
      for (const out of outputs) {
        const { topic, message, headers, bytes, timestamp } = toKafka(out, batchId);
        let partitions = metadata.get(topic);
        if (!partitions) {
          partitions = await partitioning.partitionsOf(topic);
          if (partitions.length === 0) throw new Error(`${where}: the cluster knows no partitions of topic ${topic} (does it exist?)`);
          metadata.set(topic, partitions);
        }
        const p = partition({ topic, partitionMetadata: partitions, message });
        if (openBytes > 0 && openBytes + bytes > maxRequestBytes) await send();
        let builders = open.get(topic);
        if (!builders) open.set(topic, (builders = new Map()));
        let builder = builders.get(p);
        // Room for this partition's share of a request with records spread over every partition; it grows if not.
        if (!builder) builders.set(p, (builder = new RecordBatchBuilder(Math.max(4096, Math.ceil(maxRequestBytes / partitions.length)))));
        builder.append(message.key ?? null, message.value, headers, timestamp ?? now);
        openBytes += bytes;
      }
      if (open.size > 0) await send();
    } finally {
      await inFlight;
    }
  }

  return compression === 'none' ? sendBatches : sendMessages;
}
