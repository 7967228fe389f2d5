// src/kafka/varlong-hook.ts replaces kafkajs's Decoder#readVarLong (the record timestamp delta)
// with one that adds the bytes up as a number: it must give what kafkajs gives, for every
// int64, and leave the decoder at the same offset.
import * as fc from 'fast-check';
import Decoder from 'kafkajs/src/protocol/decoder';
import { installVarLongHook } from '../../src/kafka/varlong-hook';
import { propertyParams } from './params';

// kafkajs's own encoder, to write what a broker writes.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Encoder = require('kafkajs/src/protocol/encoder') as new () => { writeVarLong(v: string): unknown; writeInt8(v: number): unknown; buffer: Buffer };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { readVarLong: kafkajsReadVarLong } = (require('kafkajs/src/protocol/decoder') as { prototype: { readVarLong: (this: unknown) => { toString(): string } } }).prototype;

const encoded = (values: readonly bigint[]): Buffer => {
  const e = new Encoder();
  for (const v of values) e.writeVarLong(v.toString());
  e.writeInt8(0x7f); // what follows a varlong in a record must stay unread
  return e.buffer;
};

describe('the varlong decoder', () => {
  installVarLongHook();

  it('gives what kafkajs gives, and stops where it stops, for any int64', () => {
    const int64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: -(2n ** 25n), max: 2n ** 25n }), fc.constantFrom(0n, -1n, 2n ** 48n - 1n, -(2n ** 48n), 2n ** 48n, -(2n ** 48n) - 1n));
    fc.assert(
      fc.property(fc.array(int64, { minLength: 1, maxLength: 5 }), (values) => {
        const bytes = encoded(values);
        const ours = new Decoder(bytes);
        const theirs = new Decoder(bytes);
        for (const v of values) {
          const got = ours.readVarLong().toString();
          expect(got).toBe(kafkajsReadVarLong.call(theirs).toString());
          expect(got).toBe(v.toString());
        }
        expect((ours as unknown as { offset: number }).offset).toBe(bytes.length - 1);
      }),
      propertyParams(2000),
    );
  });

  it('is installed in place of kafkajs own', () => {
    expect(Decoder.prototype.readVarLong).not.toBe(kafkajsReadVarLong);
  });
});
