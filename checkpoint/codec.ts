// Encoding of checkpoint values. Records (meta, state, batches) are JSON: small, and
// readable by `tidemark inspect`. Staged outputs are chunks in the column layout when they
// are flat records of one shape (columns.ts), else v8.serialize: it keeps Buffers, Dates,
// Maps and bigints intact. bench/codec.ts measures them; figures in docs/checkpoint.md.
import { deserialize, serialize } from 'node:v8';
import { COLUMNS_TAG, decodeColumns, encodeColumns } from './columns';

export function encodeJSON(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value));
}

export function decodeJSON<T>(bytes: Uint8Array): T {
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as T;
}

export function encodeOutputs(outputs: readonly unknown[]): Uint8Array {
  return encodeColumns(outputs) ?? serialize(outputs);
}

export function decodeOutputs(bytes: Uint8Array): unknown[] {
  if (bytes[0] === COLUMNS_TAG) return decodeColumns(bytes);
  const value: unknown = deserialize(bytes);
  if (!Array.isArray(value)) throw new Error('staged output chunk is not an array');
  return value;
}

/** Splits outputs into chunks of at most `size` items (at least one chunk, possibly empty). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (items.length === 0) return [[]];
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}
