// src/kafka/long-hook.ts makes kafkajs's Long.fromString give back the Long of the last two
// strings and Long#add take a number directly: kafkajs's record decoder must decode every
// record as before (offset and timestamp strings, for any int64 base and delta), however
// batches and other Long work interleave.
import * as fc from 'fast-check';
import Long from 'kafkajs/src/utils/long';
import { installLongHook } from '../../src/kafka/long-hook';
import { installVarLongHook } from '../../src/kafka/varlong-hook';
import { propertyParams } from './params';

// kafkajs's own record encoder and decoder, as a fetch answer's records go through them.
/* eslint-disable @typescript-eslint/no-require-imports */
const Decoder = require('kafkajs/src/protocol/decoder') as new (buffer: Buffer) => unknown;
const encodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0') as (r: { offsetDelta: number; timestampDelta: number; key: Buffer; value: Buffer }) => { buffer: Buffer };
const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder') as (decoder: unknown, ctx: object) => { offset: string; timestamp: string };
/* eslint-enable @typescript-eslint/no-require-imports */

const int64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 45n }));
const batchArb = fc.record({
  firstOffset: int64,
  firstTimestamp: int64,
  deltas: fc.array(fc.record({ offset: fc.oneof(fc.nat(5000), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })), timestamp: fc.oneof(fc.nat(10_000), fc.integer({ min: -(2 ** 40), max: 2 ** 40 })) }), { minLength: 1, maxLength: 6 }),
});

describe('kafkajs\'s Long, with the hook', () => {
  installVarLongHook();
  installLongHook();

  it('decodes every record\'s offset and timestamp as base + delta, batches and other Long work interleaved', () => {
    fc.assert(fc.property(fc.array(batchArb, { minLength: 1, maxLength: 4 }), fc.array(int64, { maxLength: 4 }), (batches, others) => {
      for (const [i, b] of batches.entries()) {
        const ctx = { firstOffset: b.firstOffset.toString(), firstTimestamp: b.firstTimestamp.toString(), magicByte: 2, timestampType: 0 };
        for (const d of b.deltas) {
          const bytes = encodeRecord({ offsetDelta: d.offset, timestampDelta: d.timestamp, key: Buffer.from('k'), value: Buffer.from('v') }).buffer;
          const decoder = new Decoder(bytes) as { readVarInt(): number };
          decoder.readVarInt(); // the record's length, read by the batch decoder
          const r = decodeRecord(decoder, ctx);
          expect({ offset: r.offset, timestamp: r.timestamp }).toEqual({ offset: (b.firstOffset + BigInt(d.offset)).toString(), timestamp: (b.firstTimestamp + BigInt(d.timestamp)).toString() });
        }
        // Other strings parsed between batches (kafkajs's fetch offsets, its offset filter) leave the values right.
        const other = others[i % Math.max(1, others.length)];
        if (other !== undefined) expect(Long.fromValue(other.toString()).toString()).toBe(other.toString());
      }
    }), propertyParams<[Array<{ firstOffset: bigint; firstTimestamp: bigint; deltas: Array<{ offset: number; timestamp: number }> }>, bigint[]]>(1000));
  });

  it('adds numbers as kafkajs does: safe integers exactly, anything else by its own code', () => {
    fc.assert(fc.property(int64, fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constantFrom(0, 4095, 4096, -1)), (base, n) => {
      expect(Long.fromValue(base.toString()).add(n).toString()).toBe((base + BigInt(n)).toString());
    }), propertyParams<[bigint, number]>(2000));
    expect(() => Long.fromValue('1').add(1.5)).toThrow(RangeError); // kafkajs's own: BigInt(1.5)
  });
});
