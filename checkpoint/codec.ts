// Encoding of checkpoint values. Records (meta, state, batches) are JSON: small, and
// readable by `tidemark inspect`. Staged outputs are chunks in the column layout when they
// are flat records of one shape (columns.ts), else v8.serialize: it keeps Buffers, Dates,
// Maps and bigints intact. bench/codec.ts measures them; figures in docs/checkpoint.md.
// What neither gives back unchanged is refused when encoding (checkpoint/faithful.ts).
//
// Every stored value is sealed in an envelope (seal/unseal): one flipped bit in a LevelDB
// table once changed all 20 delivered outputs of a staged chunk, or a position from 10 to
// 30, and LevelDB reads without verifying its own block checksums.
import { DefaultSerializer, deserialize } from 'node:v8';
import { COLUMNS_TAG, decodeColumns, encodeColumns } from './columns';
import { crc32c } from './crc32c';
import { unfaithful, UnstageableOutputError } from './faithful';

/**
 * The envelope's first byte. Unsealed values of format 1 start with `{` (JSON), 0x01
 * (columns) or 0xFF (v8); 0x54 differs from each in at least 4 bits, so no 1–3-bit
 * flip turns a sealed value into one that looks unsealed.
 */
export const SEALED_TAG = 0x54;
/** The envelope's version: 1 is `tag | version | CRC-32C (u32 LE) | payload`. */
export const SEALED_VERSION = 1;
/** The envelope's length in front of the payload. */
export const ENVELOPE_BYTES = 6;

/** The checksum covers the key (a value read under another key fails), tag, version and payload. */
function checksum(key: string, stored: Uint8Array): number {
  return crc32c(stored.subarray(ENVELOPE_BYTES), crc32c(stored.subarray(0, 2), crc32c(Buffer.from(key, 'utf8'))));
}

/** The value to store under `key`: `payload` in the envelope. */
export function seal(key: string, payload: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(ENVELOPE_BYTES + payload.byteLength);
  out.set(payload, ENVELOPE_BYTES);
  return sealInPlace(key, out);
}

/** Writes the envelope into the ENVELOPE_BYTES bytes reserved in front of the payload in `framed`. */
function sealInPlace(key: string, framed: Buffer): Buffer {
  framed[0] = SEALED_TAG;
  framed[1] = SEALED_VERSION;
  framed.writeUInt32LE(checksum(key, framed), 2);
  return framed;
}

export const isSealed = (stored: Uint8Array): boolean => stored[0] === SEALED_TAG;

/**
 * The payload of a stored value, checked; throws (saying what is wrong) on a damaged one.
 * `plainAllowed`: the checkpoint predates the envelope (format 1), so an unsealed value is
 * taken as it is; elsewhere an unsealed value is damage.
 */
export function unseal(key: string, stored: Uint8Array, plainAllowed: boolean): Uint8Array {
  if (!isSealed(stored)) {
    if (plainAllowed) return stored;
    throw new Error(`it has no checksum envelope (first byte 0x${(stored[0] ?? 0).toString(16).padStart(2, '0')}, ${stored.byteLength} bytes)`);
  }
  if (stored.byteLength < ENVELOPE_BYTES) throw new Error(`it is truncated to ${stored.byteLength} bytes`);
  const view = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  const want = view.readUInt32LE(2);
  const got = checksum(key, stored);
  if (got !== want) throw new Error(`checksum mismatch: stored 0x${want.toString(16).padStart(8, '0')}, computed 0x${got.toString(16).padStart(8, '0')} over ${stored.byteLength} bytes`);
  if (stored[1] !== SEALED_VERSION) throw new Error(`its envelope version ${stored[1]} is newer than this build reads (${SEALED_VERSION})`);
  return stored.subarray(ENVELOPE_BYTES);
}

export function encodeJSON(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value));
}

export function decodeJSON<T>(bytes: Uint8Array): T {
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as T;
}

/**
 * The staged bytes of a chunk of outputs, which decodeOutputs turns back into the same
 * values (prototypes included). An output it could not give back unchanged throws
 * UnstageableOutputError naming it: `first` is the index of outputs[0] in the batch's.
 */
export function encodeOutputs(outputs: readonly unknown[], first = 0): Uint8Array {
  return encodeAfter(0, outputs, first);
}

/**
 * The value to store under `key` for a chunk of outputs: seal(key, encodeOutputs(outputs)),
 * byte for byte, but encoded behind room left for the envelope and sealed there, so the
 * chunk (up to all of a 64 MiB batch, chunk by chunk) is not copied a second time.
 */
export function sealedOutputs(key: string, outputs: readonly unknown[], first = 0): Uint8Array {
  return sealInPlace(key, encodeAfter(ENVELOPE_BYTES, outputs, first));
}

/** encodeOutputs' bytes, `reserve` bytes into the buffer returned. */
function encodeAfter(reserve: number, outputs: readonly unknown[], first: number): Buffer {
  const columns = encodeColumns(outputs, first, reserve);
  if (columns) return columns;
  for (let i = 0; i < outputs.length; i++) {
    const bad = unfaithful(outputs[i]);
    if (bad !== undefined) throw new UnstageableOutputError(first + i, bad);
  }
  // v8.serialize is these three calls (node's lib/v8.js), behind the reserved bytes.
  const ser = new DefaultSerializer();
  if (reserve > 0) ser.writeRawBytes(Buffer.alloc(reserve));
  ser.writeHeader();
  ser.writeValue(outputs);
  return ser.releaseBuffer();
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
