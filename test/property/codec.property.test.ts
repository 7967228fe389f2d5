// The staged-output encoding keeps every output exactly: whatever a transform returns comes
// back from the checkpoint with the same values, types, key order, nulls and undefineds —
// through the column layout when the outputs are flat records of one shape, else v8.serialize.
import * as fc from 'fast-check';
import { COLUMNS_TAG } from '../../checkpoint/columns';
import { decodeOutputs, encodeOutputs, seal, sealedOutputs, unseal } from '../../checkpoint/codec';
import { propertyParams } from './params';

/**
 * A value as a tree of tags: types (Buffer vs Uint8Array, -0, NaN), key order, null vs undefined
 * all show. Tags come from Object.prototype.toString, not instanceof: v8.deserialize builds
 * Dates and arrays in Node's realm, not jest's.
 */
function canonical(v: unknown): unknown {
  if (v === undefined) return ['undefined'];
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return ['number', Object.is(v, -0) ? '-0' : String(v)];
  if (typeof v === 'bigint') return ['bigint', v.toString()];
  if (ArrayBuffer.isView(v)) return [Buffer.isBuffer(v) ? 'Buffer' : v.constructor.name, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')];
  const tag = Object.prototype.toString.call(v);
  if (tag === '[object Date]') return ['Date', (v as Date).getTime()];
  if (Array.isArray(v)) return ['Array', ...v.map(canonical)];
  return ['Object', ...Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, canonical(x)])];
}

const cell = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom('a', 'é', '🌊', '\ud83c', '\udf0a') }), // lone surrogates: not UTF-8-safe
  fc.string(),
  fc.double(), // NaN, -0, ±Infinity included
  fc.integer(),
  fc.constant(null),
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.uint8Array({ maxLength: 8 }), // a plain Uint8Array is not a Buffer
  fc.boolean(),
  fc.bigInt(),
  fc.date({ noInvalidDate: true }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2, noNullPrototype: true }),
);

/** Records of one shape, each column of one type or mixed — the column layout's cases and its fallbacks. */
const sameShape = fc
  .record({
    keys: fc.uniqueArray(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('a', 'b', '0', '1', 'value')), { maxLength: 5 }),
    n: fc.integer({ min: 1, max: 30 }),
    columnKinds: fc.array(fc.oneof(fc.constant('pure'), fc.constant('mixed')), { minLength: 5, maxLength: 5 }),
    seed: fc.array(fc.array(cell, { minLength: 5, maxLength: 5 }), { minLength: 30, maxLength: 30 }),
  })
  .map(({ keys, n, columnKinds, seed }) => Array.from({ length: n }, (_, i) => {
    const o: Record<string, unknown> = {};
    keys.forEach((k, c) => {
      // a "pure" column takes its type from row 0 (null/undefined sprinkled in), a mixed one any cell
      const v = columnKinds[c] === 'pure' && i % 4 !== 3 ? seed[0]![c] : seed[i]![c];
      Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
    });
    return o;
  }));

const outputs = fc.oneof(
  sameShape,
  fc.array(cell, { maxLength: 30 }), // bare values
  fc.array(fc.oneof(fc.string(), fc.constant(null)), { minLength: 1, maxLength: 30 }), // bare strings: the column layout
  fc.array(fc.oneof(sameShape.map((a) => a[0]), fc.array(fc.integer())), { maxLength: 10 }), // mixed shapes: v8
);

describe('staged outputs round trip', () => {
  it('decode(encode(x)) is x: values, types, key order, null and undefined', () => {
    fc.assert(
      fc.property(outputs, (items) => {
        expect(canonical(decodeOutputs(encodeOutputs(items)))).toEqual(canonical(items));
      }),
      propertyParams(300),
    );
  });

  it('flat records of one shape use the column layout', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ key: fc.uint8Array().map((a) => Buffer.from(a)), value: fc.option(fc.string()), ts: fc.double() }, { noNullPrototype: true }), { minLength: 1 }), (items) => {
        expect(encodeOutputs(items)[0]).toBe(COLUMNS_TAG);
        expect(canonical(decodeOutputs(encodeOutputs(items)))).toEqual(canonical(items));
      }),
      propertyParams(100),
    );
  });

  it('the chunk sealed in place is the chunk encoded then sealed, byte for byte (the stored format does not change)', () => {
    fc.assert(
      fc.property(outputs, fc.string({ maxLength: 40 }), (items, key) => {
        const inPlace = Buffer.from(sealedOutputs(key, items));
        expect(inPlace).toEqual(Buffer.from(seal(key, encodeOutputs(items))));
        expect(canonical(decodeOutputs(unseal(key, inPlace, false)))).toEqual(canonical(items));
      }),
      propertyParams(300),
    );
  });
});
