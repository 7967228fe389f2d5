// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of every stored
// record (codec.ts), the same function LevelDB and iSCSI use. Slicing-by-8 tables: eight
// bytes per step instead of one, about 5× faster than the one-table loop in plain JS. A
// native package would be faster still, but it would be a dependency for a function
// this small; docs/checkpoint.md has the figures.
const TABLES = ((): Int32Array[] => {
  const t = Array.from({ length: 8 }, () => new Int32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[0]![i] = c;
  }
  for (let i = 0; i < 256; i++) for (let s = 1; s < 8; s++) t[s]![i] = (t[s - 1]![i]! >>> 8) ^ t[0]![t[s - 1]![i]! & 0xff]!;
  return t;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array];

/** The CRC-32C of `bytes`; pass a previous result as `crc` to continue over more bytes. */
export function crc32c(data: Uint8Array, crc = 0): number {
  // A plain Uint8Array view: indexing a Buffer (a subclass) runs at half the speed.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let c = ~crc;
  let i = 0;
  const end8 = bytes.length - (bytes.length % 8);
  for (; i < end8; i += 8) {
    const lo = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    c = T7[lo & 0xff]! ^ T6[(lo >>> 8) & 0xff]! ^ T5[(lo >>> 16) & 0xff]! ^ T4[lo >>> 24]!
      ^ T3[bytes[i + 4]!]! ^ T2[bytes[i + 5]!]! ^ T1[bytes[i + 6]!]! ^ T0[bytes[i + 7]!]!;
  }
  for (; i < bytes.length; i++) c = T0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
