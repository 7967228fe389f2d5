// The file sink: one file per batch, replaced atomically, so a second delivery is harmless.
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileSink, SinkLedgerMismatchError } from 'tidemark';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-filesink-');
let n = 0;
const fresh = (): string => join(root, `d${++n}`);
const range = { topic: 't', partition: 0, from: 0, until: 2 };

describe('fileSink', () => {
  it('writes <dir>/<name>/batch-<id>.jsonl, one JSON line per output', async () => {
    const dir = fresh();
    const sink = fileSink<{ page: string; clicks: number }>({ dir, name: 'page-counts' });
    expect(sink.name).toBe('page-counts');
    await sink.write({ id: 7, ranges: [range], outputs: [{ page: '/a', clicks: 1 }, { page: '/b', clicks: 2 }] });
    expect(readdirSync(join(dir, 'page-counts'))).toEqual(['batch-7.jsonl']);
    expect(readFileSync(join(dir, 'page-counts', 'batch-7.jsonl'), 'utf8')).toBe('{"page":"/a","clicks":1}\n{"page":"/b","clicks":2}\n');
  });

  it('is idempotent: writing batch 7 twice leaves one file with its content and no temp files', async () => {
    const dir = fresh();
    const sink = fileSink<string>({ dir });
    const batch = { id: 7, ranges: [range], outputs: ['x', 'y'] };
    await sink.write(batch);
    await sink.write(batch);
    const files = readdirSync(join(dir, 'files'));
    expect(files).toEqual(['batch-7.jsonl']);
    expect(readFileSync(join(dir, 'files', 'batch-7.jsonl'), 'utf8')).toBe('"x"\n"y"\n');
  });

  it('a second delivery from a fresh sink instance (a restarted process) gives the same file', async () => {
    const dir = fresh();
    const batch = { id: 3, ranges: [range], outputs: [1, 2, 3] };
    await fileSink<number>({ dir, name: 's' }).write(batch);
    const before = readFileSync(join(dir, 's', 'batch-3.jsonl'), 'utf8');
    await fileSink<number>({ dir, name: 's' }).write(batch);
    expect(readdirSync(join(dir, 's'))).toEqual(['batch-3.jsonl']);
    expect(readFileSync(join(dir, 's', 'batch-3.jsonl'), 'utf8')).toBe(before);
  });

  it('batches are separate files; a custom format writes one line per output', async () => {
    const dir = fresh();
    const sink = fileSink<{ page: string; clicks: number }>({ dir, name: 'csv', format: (o) => `${o.page},${o.clicks}` });
    await sink.write({ id: 1, ranges: [range], outputs: [{ page: '/a', clicks: 1 }] });
    await sink.write({ id: 2, ranges: [range], outputs: [{ page: '/b', clicks: 2 }, { page: '/c', clicks: 3 }] });
    expect(readdirSync(join(dir, 'csv')).sort()).toEqual(['batch-1.jsonl', 'batch-2.jsonl']);
    expect(readFileSync(join(dir, 'csv', 'batch-2.jsonl'), 'utf8')).toBe('/b,2\n/c,3\n');
  });

  it('a crash between the temp write and the rename does not confuse the next delivery', async () => {
    const dir = fresh();
    const sub = join(dir, 'files');
    mkdirSync(sub, { recursive: true });
    // What a process killed after writing its temp file leaves: a temp file, no target.
    writeFileSync(join(sub, '.batch-7.jsonl.tmp'), '"garbage that is longer than the real content"\n'.repeat(10));

    const sink = fileSink<string>({ dir });
    await sink.write({ id: 7, ranges: [range], outputs: ['x'] });
    expect(readFileSync(join(sub, 'batch-7.jsonl'), 'utf8')).toBe('"x"\n');
    // The leftover was overwritten and renamed into place: nothing piles up.
    expect(readdirSync(sub)).toEqual(['batch-7.jsonl']);

    // Redelivery after such a crash still gives exactly one complete file.
    await sink.write({ id: 7, ranges: [range], outputs: ['x'] });
    expect(readdirSync(sub).filter((f) => !f.startsWith('.'))).toEqual(['batch-7.jsonl']);
    expect(readFileSync(join(sub, 'batch-7.jsonl'), 'utf8')).toBe('"x"\n');
  });

  it('belongs to the checkpoint that delivered to it first: another checkpoint is refused, nothing overwritten', async () => {
    const dir = fresh();
    await fileSink<string>({ dir }).write({ id: 1, checkpoint: 'cp-a', job: 'j', ranges: [range], outputs: ['a'] });
    expect(JSON.parse(readFileSync(join(dir, 'files', '.tidemark-checkpoint.json'), 'utf8'))).toEqual({ checkpoint: 'cp-a', job: 'j' });
    const other = fileSink<string>({ dir }).write({ id: 1, checkpoint: 'cp-b', ranges: [range], outputs: ['b'] });
    await expect(other).rejects.toThrow(SinkLedgerMismatchError);
    await expect(other).rejects.toThrow(/belongs to another checkpoint \(.*names checkpoint cp-a of job j; this one is cp-b\)/);
    expect(readFileSync(join(dir, 'files', 'batch-1.jsonl'), 'utf8')).toBe('"a"\n');
    // The owner, restarted (a new instance), goes on.
    await fileSink<string>({ dir }).write({ id: 2, checkpoint: 'cp-a', ranges: [range], outputs: ['c'] });
    expect(readdirSync(join(dir, 'files')).sort()).toEqual(['.tidemark-checkpoint.json', 'batch-1.jsonl', 'batch-2.jsonl']);
  });
});
