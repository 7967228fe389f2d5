// The chunks `Source.read` yields (SourceChunk in contracts.ts): records with their key and
// value bytes counted once, where the source makes the records, instead of once by the source
// and again by the engine for every record.
import type { SourceChunk, SourceRecord } from '../contracts';

/** A record's key and value bytes: what a chunk's `bytes` adds up. */
export function recordBytes(r: SourceRecord): number {
  return (r.key?.length ?? 0) + (r.value?.length ?? 0);
}

/** `records` as a chunk that carries `bytes`, their key and value bytes. */
export function sourceChunk(records: SourceRecord[], bytes: number): SourceChunk {
  const chunk: SourceChunk = records;
  chunk.bytes = bytes;
  return chunk;
}

/** A chunk's key and value bytes: carried by its source, or counted for a plain array. */
export function chunkBytes(chunk: SourceChunk): number {
  if (chunk.bytes !== undefined) return chunk.bytes;
  let bytes = 0;
  for (const r of chunk) bytes += recordBytes(r);
  return bytes;
}
