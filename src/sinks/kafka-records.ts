// The Kafka sink's records: an output as the record it is produced as (its key, value,
// headers and lineage), and a batch's outputs sent within the open transaction in produce
// requests of at most `maxRequestBytes`.
import * as zlib from 'node:zlib';
import { CompressionTypes, type Message, type Producer } from 'kafkajs';
import { BadConfigError } from '../../checkpoint/errors';
import type { SourceRecord } from '../contracts';
import { registerKafkaCodecs } from '../kafka/codecs';

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

/** Sends a batch's outputs within the open transaction `tx`. */
export type OutputSender<T> = (tx: Transaction, outputs: readonly T[], batchId: number) => Promise<void>;

/** The sender of `options`, checked (a BadConfigError for a compression this Node cannot write). */
export function outputSender<T>(where: string, options: RecordOptions<T>): OutputSender<T> {
  const compression = options.compression ?? 'none';
  if (!(compression in COMPRESSION)) throw new BadConfigError(`${where}: compression must be one of ${Object.keys(COMPRESSION).join(', ')}; got ${JSON.stringify(compression)}.`);
  if (compression === 'zstd' && typeof (zlib as unknown as { zstdCompressSync?: unknown }).zstdCompressSync !== 'function') {
    throw new BadConfigError(`${where}: compression 'zstd' needs Node ≥ 22.15 (node:zlib zstd) to write; this is Node ${process.versions.node}. Use lz4, snappy or gzip.`);
  }
  if (compression !== 'none' && compression !== 'gzip') registerKafkaCodecs();
  const toMessage = options.message ?? ((o: T): KafkaMessageOut => (isMessage(o) ? o : { value: JSON.stringify(o) }));
  const lineage = options.lineage !== false;
  const maxRequestBytes = options.maxRequestBytes ?? 512 * 1024;

  function toKafka(o: T, batchId: number): { topic: string; message: Message; bytes: number } {
    const m = toMessage(o);
    const headers: Record<string, Buffer | string> = {};
    for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined) headers[k] = v;
    if (lineage) {
      headers['tidemark.batch'] = String(batchId);
      if (m.source) {
        headers['tidemark.source.topic'] = m.source.topic;
        headers['tidemark.source.partition'] = String(m.source.partition);
        headers['tidemark.source.offset'] = String(m.source.offset);
      }
    }
    const message: Message = { key: m.key ?? null, value: m.value, headers };
    if (m.partition !== undefined) message.partition = m.partition;
    if (m.timestamp !== undefined) message.timestamp = String(m.timestamp);
    let bytes = 24 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
    for (const [k, v] of Object.entries(headers)) bytes += k.length + v.length + 4;
    return { topic: m.topic ?? options.topic, message, bytes };
  }

  /** Sends the outputs in chunks of at most maxRequestBytes within the transaction. */
  return async function sendOutputs(tx, outputs, batchId) {
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
  };
}
