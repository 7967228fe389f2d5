// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of every stored
// record (codec.ts), the function LevelDB and iSCSI use. `crc32c` is the native SIMD one
// of @node-rs/crc32 where its prebuilt binary loads (3–6× the TypeScript one over 64 MiB,
// bench/crc32c.ts; a STAGE checksums every byte it writes), else `jsCrc32c`: slicing-by-16,
// sixteen bytes a step, read as four little-endian words, through sixteen tables; about 3×
// slicing-by-8 over bytes in V8, and 10× the one-table loop.
import { endianness } from 'node:os';

const T = ((): Int32Array[] => {
  const t = Array.from({ length: 16 }, () => new Int32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[0]![i] = c;
  }
  for (let i = 0; i < 256; i++) for (let s = 1; s < 16; s++) t[s]![i] = (t[s - 1]![i]! >>> 8) ^ t[0]![t[s - 1]![i]! & 0xff]!;
  return t;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15] = T as [
  Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array,
  Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array,
];
/** Words are read in the machine's byte order; the step needs little-endian. */
const WORDS = endianness() === 'LE';

/** The CRC-32C of `data` in TypeScript; pass a previous result as `crc` to continue over more bytes. */
export function jsCrc32c(data: Uint8Array, crc = 0): number {
  // A plain Uint8Array view: indexing a Buffer (a subclass) runs at half the speed.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let c = ~crc;
  let i = 0;
  while (i < bytes.length && (bytes.byteOffset + i) % 4 !== 0) c = T0[(c ^ bytes[i++]!) & 0xff]! ^ (c >>> 8);
  if (WORDS && bytes.length - i >= 16) {
    const w = new Int32Array(bytes.buffer, bytes.byteOffset + i, ((bytes.length - i) >>> 4) << 2);
    for (let j = 0; j < w.length; j += 4) {
      const a = c ^ w[j]!, b = w[j + 1]!, d = w[j + 2]!, e = w[j + 3]!;
      c = T15[a & 0xff]! ^ T14[(a >>> 8) & 0xff]! ^ T13[(a >>> 16) & 0xff]! ^ T12[a >>> 24]!
        ^ T11[b & 0xff]! ^ T10[(b >>> 8) & 0xff]! ^ T9[(b >>> 16) & 0xff]! ^ T8[b >>> 24]!
        ^ T7[d & 0xff]! ^ T6[(d >>> 8) & 0xff]! ^ T5[(d >>> 16) & 0xff]! ^ T4[d >>> 24]!
        ^ T3[e & 0xff]! ^ T2[(e >>> 8) & 0xff]! ^ T1[(e >>> 16) & 0xff]! ^ T0[e >>> 24]!;
    }
    i += w.length * 4;
  }
  for (; i < bytes.length; i++) c = T0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export type Crc32c = (data: Uint8Array, crc?: number) => number;

/**
 * @node-rs/crc32's crc32c, or undefined where it does not load (no prebuilt binary for this
 * platform or libc) or disagrees with the TypeScript one on the standard check value.
 */
export const nativeCrc32c: Crc32c | undefined = ((): Crc32c | undefined => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { crc32c } = require('@node-rs/crc32') as typeof import('@node-rs/crc32');
    const check = Buffer.from('123456789');
    return crc32c(check) === jsCrc32c(check) ? crc32c : undefined;
  } catch {
    return undefined;
  }
})();

/** The CRC-32C of `data`; pass a previous result as `crc` to continue over more bytes. */
export const crc32c: Crc32c = nativeCrc32c ?? jsCrc32c;
