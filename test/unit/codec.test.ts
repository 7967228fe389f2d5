// The checkpoint's encodings: JSON records, output chunks (column layout or v8.serialize), chunking.
// test/property/codec.property.test.ts checks the output round trip on generated outputs.
import { serialize } from 'node:v8';
import { COLUMNS_TAG } from '../../checkpoint/columns';
import { chunk, decodeJSON, decodeOutputs, encodeJSON, encodeOutputs } from '../../checkpoint/codec';

describe('JSON records', () => {
  it('round-trip plain records', () => {
    const record = { id: 3, state: 'staged', ranges: [{ topic: 't/x', partition: 0, from: 0, until: 9_007_199_254_740_991 }], note: 'é ✓ 🌊', nil: null };
    expect(decodeJSON(encodeJSON(record))).toEqual(record);
  });

  it('decode a view into a larger buffer (LevelDB hands out subarrays)', () => {
    const inner = encodeJSON({ a: 1 });
    const big = new Uint8Array(inner.length + 20);
    big.fill(0x7b); // '{' everywhere around it: reading outside the view would break the parse
    big.set(inner, 10);
    expect(decodeJSON(big.subarray(10, 10 + inner.length))).toEqual({ a: 1 });
  });

  it('reject garbled bytes', () => {
    expect(() => decodeJSON(Buffer.from('{"a":'))).toThrow(SyntaxError);
  });
});

describe('staged output chunks', () => {
  it('round-trip what JSON cannot: Buffers, Dates, Maps, Sets, bigints, undefined, NaN', () => {
    const outputs = [
      { raw: Buffer.from([0, 1, 2, 255]), at: new Date(1_700_000_000_123), m: new Map([['k', [1, 2]]]), s: new Set(['a']), big: 2n ** 70n, u: undefined, nan: NaN },
      'plain', 42, null, [1, [2, [3]]],
    ];
    const back = decodeOutputs(encodeOutputs(outputs)) as typeof outputs;
    expect(back).toHaveLength(5);
    const first = back[0] as { raw: Buffer; at: Date; m: Map<string, number[]>; s: Set<string>; big: bigint; u: undefined; nan: number };
    expect(Buffer.isBuffer(first.raw)).toBe(true);
    expect([...first.raw]).toEqual([0, 1, 2, 255]);
    expect(first.at.getTime()).toBe(1_700_000_000_123);
    expect(first.m.get('k')).toEqual([1, 2]);
    expect(first.s.has('a')).toBe(true);
    expect(first.big).toBe(2n ** 70n);
    expect('u' in first).toBe(true);
    expect(Number.isNaN(first.nan)).toBe(true);
    expect(back.slice(1)).toEqual(['plain', 42, null, [1, [2, [3]]]]);
  });

  it('round-trip an empty chunk and a large one', () => {
    expect(decodeOutputs(encodeOutputs([]))).toEqual([]);
    const many = Array.from({ length: 10_000 }, (_, i) => ({ page: `/p${i % 50}`, clicks: i, user: `u${i}`, ts: 1_700_000_000_000 + i }));
    expect(decodeOutputs(encodeOutputs(many))).toEqual(many);
  });

  it('decode from a subarray view, as LevelDB returns values', () => {
    const bytes = encodeOutputs([{ a: Buffer.from('x') }]);
    const big = new Uint8Array(bytes.length + 16);
    big.set(bytes, 8);
    const [item] = decodeOutputs(big.subarray(8, 8 + bytes.length)) as Array<{ a: Buffer }>;
    expect(item!.a.toString()).toBe('x');
  });

  it('refuse a chunk that is not an array, and garbage', () => {
    expect(() => decodeOutputs(encodeOutputs({ not: 'an array' } as unknown as unknown[]))).toThrow(/not an array/);
    expect(() => decodeOutputs(Buffer.from('garbage'))).toThrow();
  });
});

describe('staged output chunks in the column layout', () => {
  const records = [
    { key: Buffer.from('k1'), value: Buffer.from('v1'), ts: 1, note: 'é ✓ 🌊' },
    { key: null, value: Buffer.alloc(0), ts: -0, note: undefined },
  ];

  it('flat records of one shape take it; a chunk of mixed shapes keeps v8.serialize', () => {
    expect(encodeOutputs(records)[0]).toBe(COLUMNS_TAG);
    expect(encodeOutputs([{ a: 1 }, { b: 1 }])[0]).toBe(0xff);
    expect(encodeOutputs([{ a: 1, b: 2 }, { b: 2, a: 1 }])[0]).toBe(0xff); // key order is part of the shape
  });

  it('round-trip from a subarray view, Buffers as Buffers', () => {
    const bytes = encodeOutputs(records);
    const big = new Uint8Array(bytes.length + 16);
    big.set(bytes, 8);
    const back = decodeOutputs(big.subarray(8, 8 + bytes.length)) as typeof records;
    expect(back).toEqual(records);
    expect(Buffer.isBuffer(back[0]!.key)).toBe(true);
    expect(Object.is(back[1]!.ts, -0)).toBe(true);
    expect('note' in back[1]!).toBe(true);
  });

  it('still decode v8 chunks (staged by an earlier build)', () => {
    expect(decodeOutputs(serialize(records))).toEqual(records);
  });

  it('refuse a truncated or padded chunk', () => {
    const bytes = Buffer.from(encodeOutputs(records));
    expect(() => decodeOutputs(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => decodeOutputs(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(/trailing/);
  });
});

describe('chunk', () => {
  it('splits into chunks of at most size items, in order, keeping every item', () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    expect(chunk(items, 3)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
    expect(chunk(items, 10)).toEqual([items]);
    expect(chunk(items, 100)).toEqual([items]);
    expect(chunk(items, 1)).toHaveLength(10);
  });

  it('gives one empty chunk for no items (a staged batch always has a chunk per sink)', () => {
    expect(chunk([], 5)).toEqual([[]]);
  });
});
