// Kafka's compression codecs for kafkajs, which ships gzip only. Kafka producers (the
// Java client, librdkafka, ...) may write any of gzip, snappy, lz4 and zstd, and a
// consumer must read them all. Every codec here is plain JavaScript, so nothing needs
// an install script or a native build:
//
//   snappy  kafkajs-snappy (snappyjs), including the xerial framing the Java client writes
//   lz4     lz4js: the LZ4 frame format that Kafka's record batches (magic 2) use (written
//           with the independent-blocks flag Kafka requires)
//   zstd    fzstd to read; writing needs node:zlib's zstd (Node ≥ 22.15), else it fails clearly
//
// `registerKafkaCodecs()` is idempotent and called by kafkaSource(); it changes kafkajs's
// process-wide codec table, so producers in the same process can write snappy and lz4 too.
import * as zlib from 'node:zlib';
import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import createSnappyCodec from 'kafkajs-snappy';
import * as lz4 from 'lz4js';
import { decompress as zstdDecompress } from 'fzstd';

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** LZ4 frames lz4js writes one 4 MiB block at a time. */
const LZ4_BLOCK = 4 * 1024 * 1024;

const lz4Codec = (): Codec => ({
  async compress(encoder) {
    // Kafka reads only frames that declare independent blocks (FLG bit 0x20; otherwise the broker
    // fails the produce with "Dependent block stream is unsupported"). lz4js does not set the bit,
    // and its blocks after the first may reference earlier ones; a frame of one block is
    // independent, so set the bit and its header checksum: HC = (xxh32(FLG 0x60, BD 0x70) >> 8) & 0xff.
    if (encoder.buffer.length > LZ4_BLOCK) throw new Error(`lz4: a record batch of ${encoder.buffer.length} bytes exceeds the ${LZ4_BLOCK}-byte block this codec writes; produce smaller batches`);
    const frame = toBuffer(lz4.compress(encoder.buffer));
    if (frame[4] !== 0x40 || frame[5] !== 0x70) throw new Error(`lz4: unexpected frame descriptor ${frame.subarray(4, 6).toString('hex')} from lz4js`);
    frame[4] = 0x60;
    frame[6] = 0x73;
    return frame;
  },
  async decompress(buffer) {
    return toBuffer(lz4.decompress(buffer));
  },
});

const zstdCodec = (): Codec => ({
  async compress(encoder) {
    // node:zlib has zstd from Node 22.15 on; absent before that.
    const compress = (zlib as unknown as { zstdCompressSync?: (b: Buffer) => Buffer }).zstdCompressSync;
    if (typeof compress !== 'function') {
      throw new Error(`writing zstd needs Node ≥ 22.15 (node:zlib zstd); this is Node ${process.versions.node}. Reading zstd works on any Node.`);
    }
    return compress(encoder.buffer);
  },
  async decompress(buffer) {
    return toBuffer(zstdDecompress(buffer));
  },
});

let registered = false;

/** Registers snappy, lz4 and zstd with kafkajs (gzip is built in). */
export function registerKafkaCodecs(): void {
  if (registered) return;
  const codecs = CompressionCodecs as unknown as Record<number, () => Codec>;
  codecs[CompressionTypes.Snappy] = createSnappyCodec;
  codecs[CompressionTypes.LZ4] = lz4Codec;
  codecs[CompressionTypes.ZSTD] = zstdCodec;
  registered = true;
}
