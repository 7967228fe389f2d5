// kafkajs decodes each record's timestamp delta (a varlong) through its Long class: for every
// byte a Long.fromInt, a shiftLeft and an add, then four more for the zig-zag, each a new
// object around a new BigInt. Reading 1 M × 200 B records allocated 1.6 GB, a third of it
// there (bench/reader-gc.ts with the V8 sampling heap profiler). This module replaces
// Decoder#readVarLong with one that adds the bytes up as a number and makes a single Long:
// exact for up to 7 bytes (49 bits, far beyond any timestamp delta); longer ones go through
// kafkajs's own code. The same value comes out (test/property/varlong.property.test.ts).
//
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shape it relies on.
import Decoder from 'kafkajs/src/protocol/decoder';
import Long from 'kafkajs/src/utils/long';

/** The fields of kafkajs's Decoder read here. */
export interface DecoderState {
  readonly buffer: Buffer;
  offset: number;
}

let installed = false;

/** A number decoded from at most this many varint bytes is exact (7 × 7 = 49 bits < 2^53). */
const EXACT_BYTES = 7;

export function installVarLongHook(): void {
  if (installed) return;
  const proto = Decoder.prototype as unknown as { readVarLong: (this: DecoderState) => unknown };
  const original = proto.readVarLong;
  if (typeof original !== 'function' || typeof Long.fromNumber !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/protocol/decoder has no readVarLong (a different kafkajs version is installed)');
  }
  proto.readVarLong = function readVarLong(this: DecoderState): unknown {
    const n = readVarLongNumber(this);
    return n === undefined ? original.call(this) : Long.fromNumber(n); // undefined: this.offset is untouched, kafkajs starts over
  };
  installed = true;
}

/** The varlong at `state.offset` as a number, moving past it; undefined (the offset unmoved) past 7 bytes. Also fetch-decoder.ts's. */
export function readVarLongNumber(state: DecoderState): number | undefined {
  const bytes = state.buffer;
  let at = state.offset;
  let n = 0;
  let scale = 1;
  for (let i = 0; ; i++) {
    if (i === EXACT_BYTES) return undefined;
    const b = bytes[at++]!;
    n += (b & 0x7f) * scale;
    scale *= 128;
    if (!(b >= 0x80)) break;
  }
  state.offset = at;
  // zig-zag: even n are n / 2, odd n are -(n + 1) / 2
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}
