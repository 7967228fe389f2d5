// checkpoint/tables.ts over tables LevelDB itself wrote: a sound table passes, and every
// flipped byte of a block or its trailer, every truncation and a bad magic number is
// named; only the footer's padding is not read by anyone. One table's index block is
// snappy-compressed, so the decompressor runs on LevelDB's own output. Tables the MANIFEST
// does not name are not LevelDB's to read.
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { damagedTables, tableDamage } from '../../checkpoint/tables';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-tables-');

/** A directory with tables (a reopen writes the log into one) of `count` keys of `keyLength` bytes. */
async function tables(name: string, count: number, keyLength: number): Promise<Buffer[]> {
  const dir = join(root, name);
  const db = new Level<string, string>(dir, { blockSize: 256, writeBufferSize: 64 * 1024 });
  await db.open();
  await db.batch(Array.from({ length: count }, (_, i) => ({ type: 'put' as const, key: `${String(i).padStart(keyLength, '0')}`, value: `value ${i} `.repeat(5) })));
  await db.close();
  await db.open();
  await db.close();
  const files = readdirSync(dir).filter((n) => n.endsWith('.ldb')).map((n) => readFileSync(join(dir, n)));
  expect(files.length).toBeGreaterThan(0);
  expect(await damagedTables(dir)).toEqual([]);
  return files;
}

/** The footer's two handles (metaindex, index) and where its padding starts. */
function footer(file: Buffer): { index: { offset: number; size: number }; padding: number } {
  let pos = file.length - 48;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const b = file[pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  varint();
  varint();
  const index = { offset: varint(), size: varint() };
  return { index, padding: pos };
}

/** The compression byte of the index block. */
const indexType = (file: Buffer): number => file[footer(file).index.offset + footer(file).index.size]!;

it('every flipped byte outside the footer padding is named; the padding is read by no one', async () => {
  const [file] = await tables('flip', 40, 8);
  const paddingFrom = footer(file!).padding;
  for (let at = 0; at < file!.length; at++) {
    const bad = Buffer.from(file!);
    bad[at]! ^= 0x10;
    if (at >= paddingFrom && at < file!.length - 8) expect(tableDamage(bad)).toBeUndefined();
    else expect({ at, damage: tableDamage(bad) }).toEqual({ at, damage: expect.any(String) as unknown });
  }
});

it('every truncation is named', async () => {
  const [file] = await tables('truncate', 40, 8);
  for (let to = 0; to < file!.length; to++) expect(tableDamage(file!.subarray(0, to))).toEqual(expect.any(String));
  expect(tableDamage(file!.subarray(0, 10))).toBe('10 bytes, shorter than a footer');
  expect(tableDamage(file!.subarray(0, file!.length - 1))).toBe('no table magic number at its end (truncated or overwritten)');
});

it('a snappy-compressed index block (long keys) is read, and a flip in it is named', async () => {
  const files = await tables('snappy', 3000, 200);
  const compressed = files.filter((f) => indexType(f) === 1);
  expect(compressed.length).toBeGreaterThan(0);
  for (const f of compressed) expect(tableDamage(f)).toBeUndefined();
  const bad = Buffer.from(compressed[0]!);
  bad[bad.length - 60]! ^= 1;
  expect(tableDamage(bad)).toMatch(/checksum mismatch/);
});

it('only the tables the MANIFEST names are checked: a kill during a compaction leaves one without its footer', async () => {
  const dir = join(root, 'snappy');
  const [name] = readdirSync(dir).filter((n) => n.endsWith('.ldb'));
  const half = readFileSync(join(dir, name!));
  writeFileSync(join(dir, '999999.ldb'), half.subarray(0, half.length >> 1));
  expect(await damagedTables(dir)).toEqual([]);
  copyFileSync(join(dir, '999999.ldb'), join(dir, name!));
  expect(await damagedTables(dir)).toEqual([`${name!}: no table magic number at its end (truncated or overwritten)`]);
});
