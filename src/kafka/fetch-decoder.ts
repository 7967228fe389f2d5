// kafkajs decodes every fetched record through a new Decoder over a new Buffer view of the
// record, three Longs around BigInts for its offset and timestamp (made into strings), and a
// headers array reduced into an object even when the record has no headers. Reading 1 M × 200 B
// records, that was most of kafkajs's share of the reader's main thread and much of its garbage
// (bench/README.md, "The second core"). This module replaces the decode of the Fetch v11
// response (the version kafkajs asks any broker since Kafka 2.3) with one that reads the record
// batches straight from the response's bytes: offsets and timestamps as numbers turned into
// strings while they are safe integers (kafkajs's Long otherwise), key and value as views, no
// headers array when a record has none. The records are the objects kafkajs makes, field for
// field, so its Batch, its runner and everything downstream (fetch-hook.ts, consumer.ts) see no
// difference (test/property/fetch-decoder.property.test.ts).
//
// Whatever is not a well-formed record batch (a legacy message set, a length that runs past its
// batch, a decompressed buffer that is not a Buffer) is decoded again, the whole response, by
// kafkajs's own decoder: the same records, or the same error, as before.
//
// Unlike kafkajs, it checks each batch's CRC-32C (over the bytes from its attributes to its
// end), as Kafka's Java consumer does (check.crcs): a damaged batch stops the read with
// SourceCorruptError, before any of it is decompressed or decoded, instead of records that
// differ from what was produced — or snappyjs and lz4js spinning for minutes on a damaged
// payload (found 2026-11-30). Never decoded again by kafkajs, which does not check.
//
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shapes it relies on.
import Decoder from 'kafkajs/src/protocol/decoder';
import { lookupCodecByAttributes } from 'kafkajs/src/protocol/message/compression';
import FetchV11 from 'kafkajs/src/protocol/requests/fetch/v11/response';
import Long from 'kafkajs/src/utils/long';
import { crc32c } from '../../checkpoint/crc32c';
import { SourceCorruptError } from '../errors';
import { readVarLongNumber, type DecoderState } from './varlong-hook';

type Headers = Record<string, Buffer | null | Array<Buffer | null>>;

/** A record as kafkajs 2.2.4's record decoder (protocol/recordBatch/record/v0/decoder.js) makes it. */
export interface DecodedRecord {
  readonly magicByte: number;
  readonly attributes: number;
  readonly timestamp: string;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Headers;
  readonly isControlRecord: boolean;
  readonly batchContext: BatchContext;
}

/** The batch fields kafkajs gives every record of a batch, one object per batch. */
interface BatchContext {
  readonly firstOffset: string;
  readonly firstTimestamp: string;
  readonly partitionLeaderEpoch: number;
  readonly inTransaction: boolean;
  readonly isControlBatch: boolean;
  readonly lastOffsetDelta: number;
  readonly producerId: string;
  readonly producerEpoch: number;
  readonly firstSequence: number;
  readonly maxTimestamp: string;
  readonly timestampType: number;
  readonly magicByte: number;
}

/** Thrown where the bytes are not what this decoder handles; kafkajs's decoder takes the response. */
class NotLean extends Error {}
function notLean(): never {
  throw new NotLean();
}

const MAGIC_OFFSET = 16; // of a record batch: firstOffset int64, length int32, leaderEpoch int32
const CRC_AT = 5; // from the batch's leaderEpoch: leaderEpoch int32, magic int8, then the CRC (uint32)
const CRC_FROM = 9; // the CRC covers the batch from its attributes to its end
const BATCH_OVERHEAD = 49; // what decodeMessages needs left to try another batch (and a batch's least length)
const TIMESTAMP_TYPE_FLAG = 0x8;
const TRANSACTIONAL_FLAG = 0x10;
const CONTROL_FLAG = 0x20;
const LOG_APPEND_TIME = 1;
const CREATE_TIME = 0;

/** An int64 as kafkajs's `readInt64().toString()` gives it, and as a number when that is exact (else NaN). */
function int64(buf: Buffer, at: number): { readonly text: string; readonly n: number } {
  const hi = buf.readInt32BE(at);
  const lo = buf.readUInt32BE(at + 4);
  const n = hi * 4294967296 + lo;
  return Number.isSafeInteger(n) ? { text: String(n), n } : { text: ((BigInt(hi) << 32n) + BigInt(lo)).toString(), n: NaN };
}

/** A cursor over one buffer (shaped as kafkajs's Decoder); reads past a record's end are caught by its bounds check. */
class Cursor implements DecoderState {
  constructor(readonly buffer: Buffer, public offset: number) {}

  /** kafkajs's Decoder#readVarInt, the same arithmetic. */
  varInt(): number {
    const buf = this.buffer;
    let b: number;
    let result = 0;
    let i = 0;
    do {
      b = buf[this.offset++]!;
      result += (b & 0x7f) << i;
      i += 7;
    } while (b >= 0x80);
    return (result >>> 1) ^ -(result & 1);
  }

  /** Skips a span with a varint length and gives where it starts; -1 for a null one. */
  private span(): number {
    const length = this.varInt();
    if (length === -1) return -1;
    if (length < 0) notLean();
    const start = this.offset;
    this.offset += length;
    return start;
  }

  bytes(): Buffer | null {
    const start = this.span();
    return start === -1 ? null : this.buffer.subarray(start, this.offset);
  }

  string(): string | null {
    const start = this.span();
    return start === -1 ? null : this.buffer.toString('utf8', start, this.offset);
  }
}

/** kafkajs's headers reduce, as it is: a repeated key collects its values in an array. */
function headerObject(list: ReadonlyArray<{ key: string | null; value: Buffer | null }>): Headers {
  return list.reduce<Headers>((obj, { key, value }) => {
    const k = key as string; // a null key is the property "null", as in kafkajs
    const had = obj[k];
    return { ...obj, [k]: had === undefined ? value : Array.isArray(had) ? had.concat([value]) : [had, value] };
  }, {});
}

/** Decodes `count` records from `c` (they must end by `end`) into `out`. */
function decodeRecords(c: Cursor, end: number, count: number, ctx: BatchContext, firstOffset: number, firstTimestamp: number, out: DecodedRecord[]): void {
  const buf = c.buffer;
  const logAppendTime = ctx.timestampType === LOG_APPEND_TIME;
  for (let r = 0; r < count; r++) {
    const length = c.varInt();
    const recordEnd = c.offset + length;
    if (length < 1 || recordEnd > end) notLean();
    const attributes = (buf[c.offset++]! << 24) >> 24;
    const deltaAt = c.offset;
    const delta = readVarLongNumber(c);
    let timestamp: string;
    if (delta === undefined) {
      // A long varlong: kafkajs's Decoder and Long, as its record decoder does.
      const d = new Decoder(buf) as unknown as { offset: number; readVarLong(): Long };
      d.offset = deltaAt;
      const long = d.readVarLong();
      c.offset = d.offset;
      timestamp = logAppendTime ? ctx.maxTimestamp : Long.fromValue(ctx.firstTimestamp).add(long).toString();
    } else if (logAppendTime) {
      timestamp = ctx.maxTimestamp;
    } else {
      const t = firstTimestamp + delta;
      timestamp = Number.isSafeInteger(t) ? String(t) : Long.fromValue(ctx.firstTimestamp).add(Long.fromNumber(delta)).toString();
    }
    const offsetDelta = c.varInt();
    const o = firstOffset + offsetDelta;
    const offset = Number.isSafeInteger(o) ? String(o) : Long.fromValue(ctx.firstOffset).add(offsetDelta).toString();
    const key = c.bytes();
    const value = c.bytes();
    const headerCount = c.varInt();
    let headers: Headers;
    if (headerCount === 0 || headerCount === -1) {
      headers = {};
    } else {
      if (headerCount < 0 || headerCount > recordEnd - c.offset) notLean();
      const list = new Array<{ key: string | null; value: Buffer | null }>(headerCount);
      for (let h = 0; h < headerCount; h++) {
        list[h] = { key: c.string(), value: c.bytes() };
        if (c.offset > recordEnd) notLean();
      }
      headers = headerObject(list);
    }
    if (c.offset > recordEnd) notLean(); // kafkajs would have read within the record's view only
    c.offset = recordEnd;
    out.push({ magicByte: ctx.magicByte, attributes, timestamp, offset, key, value, headers, isControlRecord: ctx.isControlBatch, batchContext: ctx });
  }
}

/** kafkajs's fetch/v4/decodeMessages.js for record batches (magic 2), each batch's CRC-32C checked first. */
async function decodeMessages(decoder: Decoder, topic: string, partition: number): Promise<DecodedRecord[]> {
  const size = decoder.readInt32();
  if (size <= 0 || !decoder.canReadBytes(size)) return [];
  const buf = decoder.readBytes(size);
  if (buf.length <= MAGIC_OFFSET || buf.readInt8(MAGIC_OFFSET) !== 2) notLean(); // a legacy message set
  const records: DecodedRecord[] = [];
  let at = 0;
  while (buf.length - at >= BATCH_OVERHEAD) {
    const first = int64(buf, at);
    const length = buf.readInt32BE(at + 8);
    const start = at + 12;
    if (length < BATCH_OVERHEAD) notLean();
    const end = start + length;
    if (end > buf.length) break; // a partial batch at the end of the answer, as maxBytes cuts it
    at = end;
    const stored = buf.readUInt32BE(start + CRC_AT);
    const computed = crc32c(buf.subarray(start + CRC_FROM, end));
    if (stored !== computed) throw new SourceCorruptError(topic, partition, first.text, stored, computed);
    const attributes = buf.readInt16BE(start + 9);
    const firstTimestamp = int64(buf, start + 15);
    const ctx: BatchContext = {
      firstOffset: first.text,
      firstTimestamp: firstTimestamp.text,
      partitionLeaderEpoch: buf.readInt32BE(start),
      inTransaction: (attributes & TRANSACTIONAL_FLAG) > 0,
      isControlBatch: (attributes & CONTROL_FLAG) > 0,
      lastOffsetDelta: buf.readInt32BE(start + 11),
      producerId: int64(buf, start + 31).text,
      producerEpoch: buf.readInt16BE(start + 39),
      firstSequence: buf.readInt32BE(start + 41),
      maxTimestamp: int64(buf, start + 23).text,
      timestampType: (attributes & TIMESTAMP_TYPE_FLAG) > 0 ? LOG_APPEND_TIME : CREATE_TIME,
      magicByte: buf.readInt8(start + 4),
    };
    const codec = lookupCodecByAttributes(attributes);
    const count = buf.readInt32BE(start + 45);
    const recordsAt = start + 49;
    if (!codec) {
      if (count === -1) continue;
      if (count < 0 || count > end - recordsAt) notLean(); // every record takes at least 2 bytes
      decodeRecords(new Cursor(buf, recordsAt), end, count, ctx, first.n, firstTimestamp.n, records);
    } else if (count > 0) {
      const plain = await codec.decompress(buf.subarray(recordsAt, end));
      if (!Buffer.isBuffer(plain) || count > plain.length) notLean();
      decodeRecords(new Cursor(plain, 0), plain.length, count, ctx, first.n, firstTimestamp.n, records);
    }
  }
  return records;
}

/** kafkajs's fetch/v11/response.js decode, with decodeMessages above. */
async function decodeV11(rawData: Buffer): Promise<unknown> {
  const decoder = new Decoder(rawData);
  const clientSideThrottleTime = decoder.readInt32();
  const errorCode = decoder.readInt16();
  const sessionId = decoder.readInt32();
  const responses = await decoder.readArrayAsync(async (d) => {
    const topicName = d.readString();
    return {
      topicName,
      partitions: await d.readArrayAsync(async (p) => {
        const partition = p.readInt32();
        return {
          partition,
          errorCode: p.readInt16(),
          highWatermark: p.readInt64().toString(),
          lastStableOffset: p.readInt64().toString(),
          lastStartOffset: p.readInt64().toString(),
          abortedTransactions: p.readArray((t) => ({ producerId: t.readInt64().toString(), firstOffset: t.readInt64().toString() })),
          preferredReadReplica: p.readInt32(),
          messages: await decodeMessages(p, topicName ?? '', partition),
        };
      }),
    };
  });
  return { throttleTime: 0, clientSideThrottleTime, errorCode, sessionId, responses };
}

let installed = false;
/** kafkajs's own decode of Fetch v11 answers, for what decodeV11 does not take. */
let kafkajsDecode: ((rawData: Buffer) => Promise<unknown>) | undefined;

/** Decodes a Fetch v11 answer as kafkajs does: leanly, or by kafkajs's own decoder for what is not plain record batches. */
export async function decodeFetchV11(rawData: Buffer): Promise<unknown> {
  try {
    return await decodeV11(rawData);
  } catch (err) {
    if (err instanceof SourceCorruptError) throw err;
    return (kafkajsDecode ?? FetchV11.decode)(rawData);
  }
}

/** Installs decodeFetchV11 in place of kafkajs's decode of Fetch v11 answers. */
export function installFetchDecoder(): void {
  if (installed) return;
  const response = FetchV11 as { decode: (rawData: Buffer) => Promise<unknown>; parse?: unknown };
  if (typeof response.decode !== 'function' || typeof response.parse !== 'function' || typeof lookupCodecByAttributes !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/protocol/requests/fetch/v11/response has no decode/parse (a different kafkajs version is installed)');
  }
  kafkajsDecode = response.decode;
  response.decode = decodeFetchV11;
  installed = true;
}

/** Exposed for the property test: the lean path alone, which throws where kafkajs's decoder would take over. */
export const decodeFetchV11Lean = decodeV11;
