// Kafka's compression codecs for kafkajs, which ships gzip only. Kafka producers (the
// Java client, librdkafka, ...) may write any of gzip, snappy, lz4 and zstd, and a
// consumer must read them all. Every codec here is plain JavaScript, so nothing needs
// an install script or a native build:
//
//   snappy  kafkajs-snappy (snappyjs), including the xerial framing the Java client writes
//   lz4     lz4js: the LZ4 frame format that Kafka's record batches (magic 2) use
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

const lz4Codec = (): Codec => ({
  async compress(encoder) {
    return toBuffer(lz4.compress(encoder.buffer));
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
