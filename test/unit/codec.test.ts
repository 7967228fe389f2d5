// The checkpoint's encodings: JSON records, output chunks (column layout or v8.serialize),
// chunking, and the checksum envelope every stored value is sealed in.
// test/property/codec.property.test.ts checks the output round trip on generated outputs;
// test/property/integrity.property.test.ts damages whole checkpoints.
import { serialize } from 'node:v8';
import { COLUMNS_TAG } from '../../checkpoint/columns';
import { chunk, decodeJSON, decodeOutputs, encodeJSON, encodeOutputs, seal, SEALED_TAG, unseal } from '../../checkpoint/codec';
import { crc32c, jsCrc32c, nativeCrc32c, type Crc32c } from '../../checkpoint/crc32c';

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

  /** A column chunk with this header and body, as a crafted or damaged one could be. */
  const crafted = (header: unknown, body = Buffer.alloc(0)): Buffer => {
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length);
    return Buffer.concat([Buffer.from([COLUMNS_TAG]), length, json, body]);
  };

  it.each([
    ['30 million outputs with no columns (the 39-byte header that made inspect allocate 2.9 GB)', crafted({ n: 3e7, keys: [], cols: [] })],
    ['30 million numbers in 8 bytes', crafted({ n: 3e7, keys: null, cols: [{ type: 'n', kinds: false, bytes: 8 }] }, Buffer.alloc(8))],
    ['30 million v8 values in a 3-byte array', crafted({ n: 3e7, keys: ['a'], cols: [{ type: 'v', kinds: false, bytes: 3 }] }, Buffer.from([0xff, 0x0f, 0x41]))],
    ['a column longer than the chunk', crafted({ n: 1, keys: null, cols: [{ type: 'b', kinds: false, bytes: 2 ** 31 }] }, Buffer.alloc(5))],
    ['a header length beyond the chunk', Buffer.from([COLUMNS_TAG, 0xff, 0xff, 0xff, 0x7f, 0x7b])],
    ['a count that is not a whole number', crafted({ n: -1, keys: null, cols: [{ type: 'n', kinds: false, bytes: 0 }] })],
  ])('refuse, before allocating anything from it, a header claiming %s', (_what, bytes) => {
    const before = process.memoryUsage().heapUsed;
    expect(() => decodeOutputs(bytes)).toThrow(/column chunk (is truncated|has a malformed (header|column))/);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 << 20);
  });

  it('keep outputs that are all {} out of the column layout (no column bounds their count)', () => {
    const empties = [{}, {}, {}];
    const bytes = encodeOutputs(empties);
    expect(bytes[0]).not.toBe(COLUMNS_TAG);
    expect(decodeOutputs(bytes)).toEqual(empties);
  });
});

describe('crc32c', () => {
  it('is the native one where @node-rs/crc32 has a prebuilt binary (Linux, macOS, Windows on x64 and arm64)', () => {
    expect(nativeCrc32c).toBeDefined();
    expect(crc32c).toBe(nativeCrc32c);
  });
});

describe.each<[string, Crc32c]>([['TypeScript', jsCrc32c], ['native', nativeCrc32c ?? jsCrc32c]])('crc32c, %s', (_name, crc32c) => {
  it('gives the standard check values (RFC 3720 B.4, and "123456789")', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('continues over pieces, at any offset of any view', () => {
    const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff));
    const whole = crc32c(bytes);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) expect(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut)))).toBe(whole);
    const padded = new Uint8Array(1013);
    padded.set(bytes, 13);
    expect(crc32c(padded.subarray(13, 1013))).toBe(whole);
  });

  it('agrees with the other one on 1 MiB at every alignment', () => {
    const bytes = Buffer.from(Array.from({ length: (1 << 20) + 64 }, (_, i) => (i * 2654435761) >>> 24));
    for (let shift = 0; shift < 16; shift++) expect(crc32c(bytes.subarray(shift, shift + (1 << 20)), 7)).toBe(jsCrc32c(bytes.subarray(shift, shift + (1 << 20)), 7));
  });
});

describe('the checksum envelope', () => {
  const key = 'batch!0000000000000007';
  const payload = encodeJSON({ id: 7, state: 'staged', ranges: [{ topic: 't', partition: 0, from: 10, until: 30 }] });

  it('gives back exactly the payload it sealed', () => {
    const stored = seal(key, payload);
    expect(stored[0]).toBe(SEALED_TAG);
    expect(Buffer.from(unseal(key, stored, false))).toEqual(Buffer.from(payload));
  });

  it('detects every single flipped bit, and every truncation', () => {
    const stored = Buffer.from(seal(key, payload));
    for (let bit = 0; bit < stored.length * 8; bit++) {
      const damaged = Buffer.from(stored);
      damaged[bit >> 3]! ^= 1 << (bit & 7);
      expect(() => unseal(key, damaged, false)).toThrow();
      // In a format-1 checkpoint a flipped tag makes the value look unsealed; the version
      // byte behind it (0x01) is then no JSON.
      if (bit < 8) expect(() => decodeJSON(unseal(key, damaged, true))).toThrow(SyntaxError);
      else expect(() => unseal(key, damaged, true)).toThrow(/checksum mismatch/);
    }
    for (let length = 0; length < stored.length; length++) expect(() => unseal(key, stored.subarray(0, length), false)).toThrow();
  });

  it('refuses a value stored under another key', () => {
    expect(() => unseal('batch!0000000000000008', seal(key, payload), false)).toThrow(/checksum mismatch/);
  });

  it('reads an unsealed value only where plain values are allowed (a format-1 checkpoint)', () => {
    expect(unseal(key, payload, true)).toBe(payload);
    expect(() => unseal(key, payload, false)).toThrow(/no checksum envelope \(first byte 0x7b/);
  });

  it('refuses a newer envelope version with a sound checksum as newer, not as a checksum mismatch', () => {
    const stored = Buffer.from(seal(key, payload));
    stored[1] = 2;
    const crc = crc32c(stored.subarray(6), crc32c(stored.subarray(0, 2), crc32c(Buffer.from(key))));
    stored.writeUInt32LE(crc, 2);
    expect(() => unseal(key, stored, false)).toThrow(/envelope version 2 is newer than this build reads \(1\)/);
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
