// How fast can a batch's outputs be staged? Encode + decode throughput of the staged
// output encoding (checkpoint/codec.ts: the column layout, else v8.serialize) against plain
// v8.serialize and JSON, on output arrays shaped like real ones. Figures go to docs/checkpoint.md.
//
//   npm run bench:codec            (bundles this file with esbuild, then runs it)
//
// Each case encodes and decodes the same 10,000 outputs, in chunks of 1,024 as the store
// does, for at least ~1 s after a warm-up; the best of 5 rounds is reported (the least
// disturbed by GC and the other process on the machine).
import { deserialize, serialize } from 'node:v8';
import { chunk, decodeOutputs, encodeOutputs, seal, unseal } from '../checkpoint/codec';
import { crc32c } from '../checkpoint/crc32c';

interface Codec {
  readonly name: string;
  encode(items: readonly unknown[]): Uint8Array;
  decode(bytes: Uint8Array): unknown[];
  /** Whether decode(encode(x)) gives x back (JSON turns a Buffer into {type, data}). */
  readonly note: string;
}

const json: Codec = {
  name: 'JSON',
  encode: (items) => Buffer.from(JSON.stringify(items)),
  decode: (bytes) => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as unknown[],
  note: 'lossy: Buffer → {type, data}',
};

// The fair JSON alternative for binary data: a replacer/reviver pair that keeps Buffers as base64.
const jsonBase64: Codec = {
  name: 'JSON+base64',
  encode: (items) => Buffer.from(JSON.stringify(items, function replacer(this: Record<string, unknown>, key, value: unknown) {
    const raw = this[key];
    return Buffer.isBuffer(raw) ? { $b64: raw.toString('base64') } : value;
  })),
  decode: (bytes) => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), (_key, value: unknown) =>
    (value !== null && typeof value === 'object' && typeof (value as { $b64?: unknown }).$b64 === 'string' ? Buffer.from((value as { $b64: string }).$b64, 'base64') : value)) as unknown[],
  note: 'lossless for Buffers',
};

const v8: Codec = {
  name: 'v8.serialize',
  encode: (items) => serialize(items),
  decode: (bytes) => deserialize(bytes) as unknown[],
  note: 'lossless (Buffers, Dates, Maps, bigints)',
};

const columns: Codec = {
  name: 'columns, else v8 (unsealed, before 2026-11-30)',
  encode: encodeOutputs,
  decode: decodeOutputs,
  note: 'lossless (as v8.serialize)',
};

// What the store does: the chunk sealed in the checksum envelope (CRC-32C), checked on read.
const KEY = 'out!0000000000000001!outputs!000000';
const used: Codec = {
  name: 'columns, else v8, sealed (used)',
  encode: (items) => seal(KEY, encodeOutputs(items)),
  decode: (bytes) => decodeOutputs(unseal(KEY, bytes, false)),
  note: 'lossless, checksummed',
};

const PAGES = ['/home', '/search', '/product', '/cart', '/checkout', '/help', '/about', '/blog'];

function clicks(n: number): unknown[] {
  return Array.from({ length: n }, (_, i) => ({ page: PAGES[i % PAGES.length], clicks: (i * 7919) % 1000, user: `u${(i * 31) % 5000}`, ts: 1_700_000_000_000 + i }));
}

function withBuffers(n: number): unknown[] {
  return Array.from({ length: n }, (_, i) => ({
    key: Buffer.from(`user-${i % 5000}`),
    value: Buffer.alloc(200, i % 251),
    partition: i % 4,
    offset: 1_000_000 + i,
    ts: 1_700_000_000_000 + i,
  }));
}

/** The benchmark's own output shape (bench/rows/node-row.ts): a value slice, key, timestamp and a suffix string. */
function benchOutputs(n: number): unknown[] {
  const fetched = Buffer.alloc(200 * n, 7);
  return Array.from({ length: n }, (_, i) => ({ v: fetched.subarray(200 * i, 200 * (i + 1)), k: null, ts: 1_700_000_000_000 + i, suffix: `|${i % 8}:${i}` }));
}

function measure(codec: Codec, items: readonly unknown[]): { opsPerSec: number; bytes: number } {
  const chunks = chunk(items, 1024);
  const once = (): number => {
    let bytes = 0;
    for (const c of chunks) {
      const encoded = codec.encode(c);
      bytes += encoded.byteLength;
      if (codec.decode(encoded).length !== c.length) throw new Error(`${codec.name} lost items`);
    }
    return bytes;
  };
  const bytes = once();
  for (let i = 0; i < 5; i++) once(); // warm-up
  let best = 0;
  for (let round = 0; round < 5; round++) {
    let runs = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < 200) {
      once();
      runs++;
      elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    }
    best = Math.max(best, (runs * items.length) / (elapsed / 1000));
  }
  return { opsPerSec: best, bytes };
}

const N = 10_000;
const cases: Array<[string, unknown[]]> = [
  [`${N} click counts {page, clicks, user, ts}`, clicks(N)],
  [`${N} records with Buffers {key, value: 200 B, partition, offset, ts}`, withBuffers(N)],
  [`${N} bench outputs {v: 200 B slice of a fetch buffer, k: null, ts, suffix}`, benchOutputs(N)],
];

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
console.log(`node ${process.version}, ${process.arch}; encode + decode, chunks of 1,024; best of 5 rounds of ≥ 200 ms`);
for (const [title, items] of cases) {
  console.log(`\n${title}`);
  console.log('| codec | outputs/s (encode+decode) | MB/s of encoded bytes | encoded size | round trip |');
  console.log('| --- | ---: | ---: | ---: | --- |');
  for (const codec of [json, jsonBase64, v8, columns, used]) {
    const { opsPerSec, bytes } = measure(codec, items);
    const mbs = (opsPerSec * (bytes / items.length)) / 1e6;
    console.log(`| ${codec.name} | ${fmt(opsPerSec)} | ${mbs.toFixed(0)} | ${(bytes / 1024).toFixed(0)} KiB | ${codec.note} |`);
  }
}

// The checksum alone: CRC-32C over 64 MiB, in chunk-sized pieces as the store checks them.
const big = Buffer.alloc(64 << 20);
for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
let bestCrc = Infinity;
for (let round = 0; round < 5; round++) {
  const start = process.hrtime.bigint();
  for (let at = 0; at < big.length; at += 256 << 10) crc32c(big.subarray(at, at + (256 << 10)));
  bestCrc = Math.min(bestCrc, Number(process.hrtime.bigint() - start) / 1e9);
}
console.log(`\nCRC-32C (checkpoint/crc32c.ts) over 64 MiB in 256 KiB pieces: ${(64 / bestCrc).toFixed(0)} MiB/s, best of 5`);

// What is delivered is what was staged: encoding checks that every output comes back
// unchanged (checkpoint/faithful.ts) instead of handing the first delivery decoded values.
// The check is inside the encode below; the alternative would add the decode.
const W1 = 250_000;
const w1Chunks = chunk(benchOutputs(W1), 1024);
let w1Encoded: Uint8Array[] = [];
let bestEncode = Infinity;
let bestDecode = Infinity;
for (let round = 0; round < 5; round++) {
  let start = process.hrtime.bigint();
  w1Encoded = w1Chunks.map((c, i) => encodeOutputs(c, i * 1024));
  bestEncode = Math.min(bestEncode, Number(process.hrtime.bigint() - start) / 1e6);
  start = process.hrtime.bigint();
  for (const bytes of w1Encoded) decodeOutputs(bytes);
  bestDecode = Math.min(bestDecode, Number(process.hrtime.bigint() - start) / 1e6);
}
console.log(`\n${fmt(W1)} bench outputs (200 B), chunks of 1,024: encode with the staging check ${bestEncode.toFixed(0)} ms; decoding them for the first delivery would add ${bestDecode.toFixed(0)} ms (best of 5)`);
