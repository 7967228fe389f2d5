// A column layout for staged output chunks whose outputs are flat records of one shape
// (`{ key: Buffer, value: Buffer, ts: number, … }` — most jobs' outputs). v8.serialize pays
// a JS callback for every Buffer and walks every object; here a column of Buffers is one
// native concat, a column of strings one UTF-8 encode, a column of numbers one Float64Array.
// Anything this layout cannot keep exactly returns undefined and the caller uses v8.serialize.
// A value that neither keeps (a function, a class instance: checkpoint/faithful.ts) throws
// UnstageableOutputError: the records here are already known to be plain, so only the 'v'
// columns need the walk.
//
//   0x01 | u32 header length | header JSON { n, keys, cols } | column bodies, in order
//
// `keys` is the record's property names in order, or null when the outputs are bare values
// (one column). A column is one of:
//   'b' Buffers   u32 lengths[n], bytes
//   's' strings   u32 lengths[n] (UTF-16 units), UTF-8 bytes of their concatenation
//   'n' numbers   f64[n]
//   'v' anything else: v8.serialize of the column's values (nested objects, Dates, bigints…)
// and may carry a kinds byte per cell (0 the column's type, 1 null, 2 undefined) when any
// cell is null or undefined. v8 output starts with 0xFF, so the first byte tells them apart.
import { deserialize, serialize } from 'node:v8';
import { BACK_TO_ROOT, propertyPath, unfaithful, UnstageableOutputError } from './faithful';
import { isWholeNumber } from './model';

export const COLUMNS_TAG = 0x01;

type ColumnType = 'b' | 's' | 'n' | 'v';
interface ColumnHeader { readonly type: ColumnType; readonly kinds: boolean; readonly bytes: number }
interface Header { readonly n: number; readonly keys: string[] | null; readonly cols: ColumnHeader[] }

const NULL = 1;
const UNDEFINED = 2;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  return Object.getPrototypeOf(v) === Object.prototype;
}

/** The property names of `first`, if every item is a plain object with exactly these names in this order. */
function sharedKeys(items: readonly unknown[]): string[] | undefined {
  const first = items[0];
  if (!isPlainObject(first)) return undefined;
  const keys = Object.keys(first);
  if (keys.includes('__proto__')) return undefined;
  for (const item of items) {
    if (!isPlainObject(item)) return undefined;
    let i = 0;
    for (const k in item) if (k !== keys[i++]) return undefined;
    if (i !== keys.length) return undefined;
  }
  return keys;
}

function typeOf(v: unknown): ColumnType | undefined {
  if (typeof v === 'string') return 's';
  if (typeof v === 'number') return 'n';
  if (Buffer.isBuffer(v)) return 'b';
  return undefined;
}

/** Node 20 has String.prototype.isWellFormed; lib ES2023 does not declare it. */
const isWellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed();

/** `first` is the index of values[0] in the batch's outputs, `path` the column's key, `records` the records the values are from. */
interface Place { readonly first: number; readonly path: string; readonly records?: readonly unknown[] }

/** A column for v8, or undefined when a value refers back to its record (v8 keeps that cycle only when it serializes the whole record). */
function anyColumn(values: readonly unknown[], at: Place): [ColumnHeader, Buffer[]] | undefined {
  for (let i = 0; i < values.length; i++) {
    const bad = unfaithful(values[i], at.path, at.records?.[i] as object | undefined);
    if (bad === BACK_TO_ROOT) return undefined;
    if (bad !== undefined) throw new UnstageableOutputError(at.first + i, bad);
  }
  const body = serialize(values);
  return [{ type: 'v', kinds: false, bytes: body.byteLength }, [body]];
}

/** One column's body: its values (null and undefined allowed anywhere) in a single layout. */
function encodeColumn(values: readonly unknown[], at: Place): [ColumnHeader, Buffer[]] | undefined {
  const n = values.length;
  let type: ColumnType | undefined;
  let kinds: Uint8Array | undefined;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      kinds ??= new Uint8Array(n);
      kinds[i] = v === null ? NULL : UNDEFINED;
      continue;
    }
    const t = typeOf(v);
    if (t === undefined || (type !== undefined && t !== type)) return anyColumn(values, at);
    type = t;
  }
  type ??= 'n';
  const parts: Buffer[] = kinds ? [Buffer.from(kinds.buffer, kinds.byteOffset, n)] : [];
  if (type === 'n') {
    const f = new Float64Array(n);
    for (let i = 0; i < n; i++) f[i] = (values[i] as number | null | undefined) ?? 0;
    parts.push(Buffer.from(f.buffer));
  } else if (type === 'b') {
    const lengths = new Uint32Array(n);
    parts.push(Buffer.from(lengths.buffer));
    for (let i = 0; i < n; i++) {
      const b = values[i] as Buffer | null | undefined;
      if (b) { lengths[i] = b.length; parts.push(b); } // copied once, into the chunk
    }
  } else {
    const lengths = new Uint32Array(n);
    let text = '';
    for (let i = 0; i < n; i++) {
      const s = values[i] as string | null | undefined;
      if (s) { lengths[i] = s.length; text += s; }
    }
    // A lone surrogate does not survive UTF-8: leave such a column to v8.
    if (!isWellFormed(text)) return anyColumn(values, at);
    parts.push(Buffer.from(lengths.buffer), Buffer.from(text, 'utf8'));
  }
  let bytes = 0;
  for (const p of parts) bytes += p.byteLength;
  return [{ type, kinds: kinds !== undefined, bytes }, parts];
}

/**
 * The chunk in the column layout, or undefined when its outputs are not flat records of one
 * shape. `first`: the index of items[0] in the batch's outputs, for UnstageableOutputError.
 * `reserve` bytes are left in front of the chunk for the caller's envelope (codec.ts).
 */
export function encodeColumns(items: readonly unknown[], first = 0, reserve = 0): Buffer | undefined {
  if (!Array.isArray(items) || items.length === 0) return undefined;
  const keys = isPlainObject(items[0]) ? sharedKeys(items) : null;
  // Outputs that are all `{}` have no column to bound their count by: v8 keeps them.
  if (keys === undefined || keys?.length === 0) return undefined;
  if (keys === null && items.some((v) => v !== null && typeof v === 'object' && !Buffer.isBuffer(v))) return undefined;
  const cols: ColumnHeader[] = [];
  const bodies: Buffer[] = [];
  const add = (values: readonly unknown[], path: string, records?: readonly unknown[]): boolean => {
    const encoded = encodeColumn(values, { first, path, records });
    if (encoded === undefined) return false;
    cols.push(encoded[0]);
    for (const p of encoded[1]) bodies.push(p);
    return true;
  };
  if (keys === null) add(items, '');
  else for (const k of keys) if (!add(items.map((o) => (o as Record<string, unknown>)[k]), propertyPath(k), items)) return undefined;
  const header = Buffer.from(JSON.stringify({ n: items.length, keys, cols } satisfies Header));
  let size = reserve + 5 + header.length;
  for (const col of cols) size += col.bytes;
  const out = Buffer.allocUnsafe(size);
  out[reserve] = COLUMNS_TAG;
  out.writeUInt32LE(header.length, reserve + 1);
  out.set(header, reserve + 5);
  let at = reserve + 5 + header.length;
  for (const part of bodies) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const isCount = (v: unknown): v is number => isWholeNumber(v);

/**
 * The header, checked against the chunk's own length before anything is allocated from
 * it: a crafted 39-byte header with `n: 3e7` once made `inspect` allocate 2.9 GB. Every
 * column body holds at least a byte per output (8 per number, 4 per length, one or more
 * per value v8 writes), and the bodies fill the chunk exactly.
 */
function readHeader(buf: Buffer): { header: Header; at: number } {
  if (buf.length < 5) throw new Error('column chunk is truncated');
  const headerEnd = 5 + buf.readUInt32LE(1);
  if (headerEnd > buf.length) throw new Error(`column chunk is truncated: its header says ${headerEnd - 5} bytes, ${buf.length - 5} are there`);
  const header = JSON.parse(buf.toString('utf8', 5, headerEnd)) as Partial<Header> | null;
  const { n, keys, cols } = header ?? {};
  const wellFormed = isCount(n) && Array.isArray(cols)
    && (keys === null ? cols.length === 1 : Array.isArray(keys) && keys.length === cols.length && keys.length > 0 && keys.every((k) => typeof k === 'string'))
    && cols.every((c: Partial<ColumnHeader> | null) => c !== null && typeof c === 'object' && ['b', 's', 'n', 'v'].includes(c.type!) && typeof c.kinds === 'boolean' && isCount(c.bytes));
  if (!wellFormed) throw new Error('column chunk has a malformed header');
  let total = 0;
  for (const col of cols) {
    const least = (col.kinds ? n : 0) + (col.type === 'n' ? 8 * n : col.type === 'v' ? n : 4 * n);
    if (col.bytes < least || (col.type === 'n' && col.bytes !== least)) throw new Error(`column chunk has a malformed column: ${col.bytes} bytes for ${n} values of type ${col.type}`);
    total += col.bytes;
  }
  if (headerEnd + total < buf.length) throw new Error('column chunk has trailing bytes');
  if (headerEnd + total > buf.length) throw new Error(`column chunk is truncated: its columns need ${total} bytes, ${buf.length - headerEnd} are there`);
  return { header: { n, keys: keys ?? null, cols }, at: headerEnd };
}

/** The outputs of a chunk in the column layout (throws on a malformed one). */
export function decodeColumns(bytes: Uint8Array): unknown[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf[0] !== COLUMNS_TAG) throw new Error('not a column chunk');
  const { header: { n, keys, cols }, at: start } = readHeader(buf);
  let at = start;
  const take = (len: number): Buffer => {
    if (at + len > buf.length) throw new Error('column chunk is truncated');
    const part = buf.subarray(at, at + len);
    at += len;
    return part;
  };
  const columns = cols.map((col): unknown[] => {
    const body = take(col.bytes);
    if (col.type === 'v') {
      const values: unknown = deserialize(body);
      if (!Array.isArray(values) || values.length !== n) throw new Error('column chunk has a malformed column');
      return values;
    }
    let p = 0;
    const kinds = col.kinds ? body.subarray(0, (p = n)) : undefined;
    const values = new Array<unknown>(n);
    if (col.type === 'n') {
      for (let i = 0; i < n; i++, p += 8) values[i] = body.readDoubleLE(p);
    } else {
      const lengths = body.subarray(p, p + 4 * n);
      p += 4 * n;
      const data = body.subarray(p);
      const text = col.type === 's' ? data.toString('utf8') : '';
      let pos = 0;
      for (let i = 0; i < n; i++) {
        const len = lengths.readUInt32LE(4 * i);
        values[i] = col.type === 's' ? text.slice(pos, pos + len) : data.subarray(pos, pos + len);
        pos += len;
      }
      if (pos !== (col.type === 's' ? text.length : data.length)) throw new Error('column chunk has a malformed column');
    }
    if (kinds) for (let i = 0; i < n; i++) if (kinds[i] !== 0) values[i] = kinds[i] === NULL ? null : undefined;
    return values;
  });
  if (at !== buf.length) throw new Error('column chunk has trailing bytes');
  if (keys === null) return columns[0]!;
  const items = new Array<unknown>(n);
  for (let i = 0; i < n; i++) {
    const o: Record<string, unknown> = {};
    for (let c = 0; c < keys.length; c++) o[keys[c]!] = columns[c]![i];
    items[i] = o;
  }
  return items;
}
