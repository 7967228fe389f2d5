// Checks the block checksums of LevelDB's table files before LevelDB opens them. LevelDB
// reads tables without verifying them (no paranoid checks in classic-level), and its
// compaction merges a damaged table into new ones: two flipped bits in a key of a table
// aborted the whole process in TableBuilder::Add ("Compare(key, last_key) > 0" failed,
// SIGABRT, not exit 7), on every start (test/property/leveldb-files.property.test.ts,
// 2026-11-30). The format is LevelDB's doc/table_format.md: a 48-byte footer ending in a
// magic number holds the handles of the metaindex and index blocks; the index holds a
// handle per data block, the metaindex one for the filter block; every block is followed by
// a type byte (0 raw, 1 snappy) and a masked CRC-32C of the block and that byte.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from './crc32c';

const FOOTER = 48;
const MAGIC = 0xdb4775248b80fb57n;
const TRAILER = 5;

class Damage extends Error {}

/** LevelDB stores a CRC-32C masked, so that a checksum over bytes holding checksums is not trivial. */
const masked = (crc: number): number => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;

interface Handle { readonly offset: number; readonly size: number }

/** A varint at `pos`; returns the value and the position after it. */
function varint(bytes: Uint8Array, pos: number, end = bytes.length): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 64; shift += 7) {
    if (pos >= end) throw new Damage('a varint runs past its block');
    const b = bytes[pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, pos];
  }
  throw new Damage('a varint is longer than 10 bytes');
}

function handle(bytes: Uint8Array, pos: number, end?: number): [Handle, number] {
  const [offset, p1] = varint(bytes, pos, end);
  const [size, p2] = varint(bytes, p1, end);
  return [{ offset, size }, p2];
}

/** LevelDB's snappy decompression, for a compressed index block. */
function unsnappy(src: Uint8Array): Uint8Array {
  const [length, start] = varint(src, 0);
  if (length > 64 * 1024 * 1024) throw new Damage(`a compressed block claims ${length} bytes`);
  const out = new Uint8Array(length);
  let o = 0;
  for (let i = start; i < src.length;) {
    const tag = src[i++]!;
    let len: number, back = 0;
    if ((tag & 3) === 0) {
      len = (tag >> 2) + 1;
      if (len > 60) {
        const n = len - 60;
        len = 1;
        for (let k = 0; k < n; k++) len += (src[i + k] ?? 0) * 2 ** (8 * k);
        i += n;
      }
      if (i + len > src.length || o + len > length) throw new Damage('corrupted compressed block');
      out.set(src.subarray(i, i + len), o);
      i += len;
      o += len;
      continue;
    }
    if ((tag & 3) === 1) [len, back] = [((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | (src[i++] ?? 0)];
    else {
      const n = (tag & 3) === 2 ? 2 : 4;
      len = (tag >> 2) + 1;
      for (let k = 0; k < n; k++) back += (src[i + k] ?? 0) * 2 ** (8 * k);
      i += n;
    }
    if (back === 0 || back > o || o + len > length || i > src.length) throw new Damage('corrupted compressed block');
    for (let k = 0; k < len; k++, o++) out[o] = out[o - back]!;
  }
  if (o !== length) throw new Damage('corrupted compressed block');
  return out;
}

/** The contents of the block at `h`, its checksum verified. */
function block(file: Uint8Array, h: Handle): Uint8Array {
  if (h.offset + h.size + TRAILER > file.length - FOOTER) throw new Damage(`a block handle (${h.offset}, ${h.size}) points past the data`);
  const stored = Buffer.from(file.buffer, file.byteOffset, file.byteLength).readUInt32LE(h.offset + h.size + 1);
  const crc = crc32c(file.subarray(h.offset, h.offset + h.size + 1));
  if (masked(crc) !== stored) throw new Damage(`block at ${h.offset} (${h.size} bytes): checksum mismatch`);
  const type = file[h.offset + h.size]!;
  const contents = file.subarray(h.offset, h.offset + h.size);
  if (type === 0) return contents;
  if (type === 1) return unsnappy(contents);
  throw new Damage(`block at ${h.offset}: unknown compression type ${type}`);
}

/** The values of an index or metaindex block's entries: block handles. */
function entries(b: Uint8Array): Handle[] {
  if (b.length < 4) throw new Damage('an index block is shorter than its restart count');
  const restarts = Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32LE(b.length - 4);
  const end = b.length - 4 - 4 * restarts;
  if (end < 0) throw new Damage('an index block has more restarts than bytes');
  const handles: Handle[] = [];
  for (let pos = 0; pos < end;) {
    const [, p1] = varint(b, pos, end);
    const [unshared, p2] = varint(b, p1, end);
    const [valueLength, p3] = varint(b, p2, end);
    const value = p3 + unshared;
    if (value + valueLength > end) throw new Damage('an index entry runs past its block');
    handles.push(handle(b, value, value + valueLength)[0]);
    pos = value + valueLength;
  }
  return handles;
}

/** What is wrong with one table file, or undefined. */
export function tableDamage(file: Uint8Array): string | undefined {
  try {
    if (file.length < FOOTER) throw new Damage(`${file.length} bytes, shorter than a footer`);
    const footer = Buffer.from(file.buffer, file.byteOffset + file.length - FOOTER, FOOTER);
    if (footer.readBigUInt64LE(FOOTER - 8) !== MAGIC) throw new Damage('no table magic number at its end (truncated or overwritten)');
    const [meta, p] = handle(footer, 0, FOOTER - 8);
    const [index] = handle(footer, p, FOOTER - 8);
    // The metaindex names the filter block: a damaged filter can answer "not here" for a key that is.
    for (const h of [...entries(block(file, meta)), ...entries(block(file, index))]) block(file, h);
    return undefined;
  } catch (err) {
    if (err instanceof Damage) return err.message;
    throw err;
  }
}

/**
 * The records of a LevelDB log-format file (the MANIFEST): 32 KiB blocks of records with a
 * 7-byte header (masked CRC-32C, length, type: 1 full, 2 first, 3 middle, 4 last).
 */
function logRecords(file: Uint8Array): Uint8Array[] {
  const view = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const records: Uint8Array[] = [];
  let parts: Uint8Array[] = [];
  for (let block = 0; block < file.length; block += 32768) {
    const end = Math.min(block + 32768, file.length);
    for (let pos = block; pos + 7 <= end;) {
      const length = view.readUInt16LE(pos + 4);
      const type = file[pos + 6]!;
      if (type === 0 && length === 0) break; // zero padding
      if (pos + 7 + length > end || masked(crc32c(file.subarray(pos + 6, pos + 7 + length))) !== view.readUInt32LE(pos)) throw new Damage('a MANIFEST record fails its checksum');
      parts.push(file.subarray(pos + 7, pos + 7 + length));
      if (type === 1 || type === 4) {
        records.push(Buffer.concat(parts));
        parts = [];
      }
      pos += 7 + length;
    }
  }
  return records;
}

/** The numbers of the table files the MANIFEST's version edits leave live. */
function liveTables(manifest: Uint8Array): Set<number> {
  const live = new Set<number>();
  for (const edit of logRecords(manifest)) {
    for (let pos = 0; pos < edit.length;) {
      let tag: number, n: number, len: number;
      [tag, pos] = varint(edit, pos);
      switch (tag) {
        case 1: // comparator name
          [len, pos] = varint(edit, pos);
          pos += len;
          break;
        case 2: case 3: case 4: case 9: // log number, next file number, last sequence, previous log number
          [, pos] = varint(edit, pos);
          break;
        case 5: // compaction pointer: level, key
          [, pos] = varint(edit, pos);
          [len, pos] = varint(edit, pos);
          pos += len;
          break;
        case 6: // deleted file: level, number
          [, pos] = varint(edit, pos);
          [n, pos] = varint(edit, pos);
          live.delete(n);
          break;
        case 7: // new file: level, number, size, smallest key, largest key
          [, pos] = varint(edit, pos);
          [n, pos] = varint(edit, pos);
          [, pos] = varint(edit, pos);
          [len, pos] = varint(edit, pos);
          [len, pos] = varint(edit, pos + len);
          pos += len;
          live.add(n);
          break;
        default:
          throw new Damage(`a MANIFEST edit has an unknown tag ${tag}`);
      }
    }
  }
  return live;
}

/**
 * The damaged table files of a LevelDB directory, each with its damage. Only the tables the
 * MANIFEST names: a kill during a compaction leaves a table without its footer, which LevelDB
 * never read and deletes at open. Where CURRENT or the MANIFEST cannot be read, LevelDB's
 * open fails on it (exit 7), and no table is checked here.
 */
export async function damagedTables(dbDir: string): Promise<string[]> {
  let live: Set<number>;
  try {
    const current = (await readFile(join(dbDir, 'CURRENT'), 'utf8')).trim();
    if (!/^MANIFEST-\d+$/.test(current)) return [];
    live = liveTables(await readFile(join(dbDir, current)));
  } catch {
    return []; // a new directory, or one LevelDB refuses
  }
  const names = await readdir(dbDir).catch(() => []);
  const found: string[] = [];
  for (const name of names.filter((n) => /^\d+\.(ldb|sst)$/.test(n) && live.has(Number(n.split('.')[0]))).sort()) {
    const problem = tableDamage(await readFile(join(dbDir, name)));
    if (problem !== undefined) found.push(`${name}: ${problem}`);
  }
  return found;
}
