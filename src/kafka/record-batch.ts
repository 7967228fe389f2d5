// A Kafka record batch (magic 2, uncompressed) built once per partition, straight into one
// Buffer: the Kafka sink's produce path (produce-hook.ts sends it). kafkajs builds a record as
// an object spread, an Encoder and a Buffer per message, copies each into the batch, the batch
// into the partition's entry and that into the request, and computes the CRC-32C in
// JavaScript; on row 5 of the bench that was ~60 % of the sink's CPU and most of its garbage.
//
// The batch's header (producer id, epoch, base sequence) is written when the batch is sent:
// the sequence is only known then. Layout (Kafka's DefaultRecordBatch):
//
//   0 baseOffset int64 | 8 batchLength int32 | 12 partitionLeaderEpoch int32 | 16 magic int8
//   17 crc uint32 (CRC-32C of bytes 21…end) | 21 attributes int16 | 23 lastOffsetDelta int32
//   27 baseTimestamp int64 | 35 maxTimestamp int64 | 43 producerId int64 | 51 producerEpoch int16
//   53 baseSequence int32 | 57 records int32 | 61 the records
//
//   record: length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
//           key (varint length, -1: null) | value (likewise) | header count varint |
//           per header: key (varint length, UTF-8) | value (varint length)
//
// Every varint is zig-zag encoded.
import { crc32c } from '../../checkpoint/crc32c';

const HEADER = 61;
const MAGIC = 2;
const TRANSACTIONAL = 0x10;

export type Bytes = Buffer | string | null;

/** A record batch's records, ready for its header. */
export interface SealedBatch {
  /** The whole batch: HEADER bytes of room, then the records. */
  readonly bytes: Buffer;
  readonly count: number;
  readonly firstTimestamp: number;
  readonly maxTimestamp: number;
}

/** Who sends the batch: the fields of the header known only then. */
export interface BatchProducer {
  readonly producerId: string;
  readonly producerEpoch: number;
  readonly baseSequence: number;
  readonly transactional: boolean;
}

const zigzag = (n: number): number => (n >= 0 ? n * 2 : -n * 2 - 1);

function varintSize(n: number): number {
  let z = zigzag(n);
  let size = 1;
  while (z >= 128) {
    z = Math.floor(z / 128);
    size++;
  }
  return size;
}

const byteLength = (b: Bytes): number => (b === null ? 0 : typeof b === 'string' ? Buffer.byteLength(b) : b.length);

/** Appends records to one partition's batch. */
export class RecordBatchBuilder {
  private buf: Buffer;
  private size = HEADER;
  private records = 0;
  private first = 0;
  private max = 0;

  constructor(capacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, HEADER));
  }

  /** Bytes of the batch so far, header included. */
  get bytes(): number {
    return this.size;
  }

  get count(): number {
    return this.records;
  }

  private static bodyBytes(key: Bytes, value: Bytes, headers: ReadonlyArray<readonly [string, Buffer | string]>, timestampDelta: number, offsetDelta: number): number {
    const k = byteLength(key);
    const v = byteLength(value);
    let n = 1 + varintSize(timestampDelta) + varintSize(offsetDelta)
      + (key === null ? 1 : varintSize(k) + k) + (value === null ? 1 : varintSize(v) + v) + varintSize(headers.length);
    for (const [hk, hv] of headers) {
      const kl = Buffer.byteLength(hk);
      const vl = byteLength(hv);
      n += varintSize(kl) + kl + varintSize(vl) + vl;
    }
    return n;
  }

  append(key: Bytes, value: Bytes, headers: ReadonlyArray<readonly [string, Buffer | string]>, timestamp: number): void {
    if (this.records === 0) this.first = this.max = timestamp;
    else if (timestamp > this.max) this.max = timestamp;
    const timestampDelta = timestamp - this.first;
    const body = RecordBatchBuilder.bodyBytes(key, value, headers, timestampDelta, this.records);
    this.reserve(varintSize(body) + body);
    this.varint(body);
    this.buf[this.size++] = 0; // attributes: none are used
    this.varint(timestampDelta);
    this.varint(this.records);
    this.field(key);
    this.field(value);
    this.varint(headers.length);
    for (const [hk, hv] of headers) {
      this.varint(Buffer.byteLength(hk));
      this.size += this.buf.write(hk, this.size, 'utf8');
      this.field(hv);
    }
    this.records++;
  }

  /** The batch as built; the builder must not be used after. */
  seal(): SealedBatch {
    return { bytes: this.buf.subarray(0, this.size), count: this.records, firstTimestamp: this.first, maxTimestamp: this.max };
  }

  private reserve(n: number): void {
    if (this.size + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.size + n));
    this.buf.copy(grown, 0, 0, this.size);
    this.buf = grown;
  }

  private varint(n: number): void {
    let z = zigzag(n);
    while (z >= 128) {
      this.buf[this.size++] = (z % 128) | 0x80;
      z = Math.floor(z / 128);
    }
    this.buf[this.size++] = z;
  }

  private field(b: Bytes): void {
    if (b === null) {
      this.varint(-1);
    } else if (typeof b === 'string') {
      this.varint(Buffer.byteLength(b));
      this.size += this.buf.write(b, this.size, 'utf8');
    } else {
      this.varint(b.length);
      b.copy(this.buf, this.size);
      this.size += b.length;
    }
  }
}

/** Writes the batch's header for `producer` (in place) and returns the batch's bytes. */
export function finishBatch(batch: SealedBatch, producer: BatchProducer): Buffer {
  const b = batch.bytes;
  b.writeBigInt64BE(0n, 0);
  b.writeInt32BE(b.length - 12, 8);
  b.writeInt32BE(0, 12);
  b.writeInt8(MAGIC, 16);
  b.writeInt16BE(producer.transactional ? TRANSACTIONAL : 0, 21);
  b.writeInt32BE(batch.count - 1, 23);
  b.writeBigInt64BE(BigInt(batch.firstTimestamp), 27);
  b.writeBigInt64BE(BigInt(batch.maxTimestamp), 35);
  b.writeBigInt64BE(BigInt(producer.producerId), 43);
  b.writeInt16BE(producer.producerEpoch, 51);
  b.writeInt32BE(producer.baseSequence, 53);
  b.writeInt32BE(batch.count, 57);
  b.writeUInt32BE(crc32c(b.subarray(21)), 17);
  return b;
}
