// The rolling file sink: batches framed in an in-progress part file, finished parts renamed
// into place; a redelivery finds its frame, a torn frame is cut off on open.
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { rollingFileSink, SinkLedgerMismatchError, SinkRejectedError } from 'tidemark';
import { checkIdempotentSink } from 'tidemark/testing';
import { finishedParts, rollingLines } from '../support/rolling';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-rolling-');
let n = 0;
const fresh = (): string => join(root, `d${++n}`);
const range = { topic: 't', partition: 0, from: 0, until: 2 };
const batch = <T>(id: number, outputs: T[]) => ({ id, ranges: [range], outputs });

const finished = finishedParts;
const held = rollingLines;

describe('rollingFileSink', () => {
  it('appends batches to one in-progress part and rolls it by size into part-all-<first>-<last>.jsonl', async () => {
    const dir = fresh();
    const sink = rollingFileSink<{ n: number }>({ dir, name: 'r', maxPartBytes: 200 });
    await sink.write(batch(1, [{ n: 1 }, { n: 2 }]));
    await sink.write(batch(2, [{ n: 3 }]));
    expect(finished(join(dir, 'r'))).toEqual([]); // nothing finished: a reader sees no file yet
    await sink.write(batch(3, Array.from({ length: 20 }, (_, i) => ({ n: 4 + i }))));
    expect(finished(join(dir, 'r'))).toEqual(['part-all-000000000001-000000000003.jsonl']);
    expect(readFileSync(join(dir, 'r', 'part-all-000000000001-000000000003.jsonl'), 'utf8').split('\n').slice(0, 3)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    expect(readdirSync(join(dir, 'r')).filter((f) => f.startsWith('.inprogress'))).toEqual([]);
    await sink.write(batch(4, [{ n: 99 }]));
    expect(held(join(dir, 'r'))).toHaveLength(24);
    await sink.close!();
  });

  it('a redelivery, by the same instance or a new one, finds its frame or its finished file and writes nothing', async () => {
    const dir = fresh();
    const a = rollingFileSink<number>({ dir, name: 'r', maxPartBytes: 1 });
    await a.write(batch(1, [1]));
    await a.write(batch(2, [2]));
    const b = rollingFileSink<number>({ dir, name: 'r' });
    await b.write(batch(2, [2]));
    await b.write(batch(3, [3]));
    await b.write(batch(3, [3]));
    await a.close!();
    await b.close!();
    const c = rollingFileSink<number>({ dir, name: 'r' });
    await c.write(batch(3, [3]));
    await c.close!();
    expect(held(join(dir, 'r'))).toEqual(['1', '2', '3']);
  });

  it('on open cuts a torn last frame off, and the redelivery appends the batch again', async () => {
    const dir = fresh();
    const sub = join(dir, 'r');
    const a = rollingFileSink<string>({ dir, name: 'r' });
    await a.write(batch(1, ['x']));
    await a.write(batch(2, ['y', 'z']));
    await a.close!();
    const path = join(sub, '.inprogress-all.frames');
    truncateSync(path, statSync(path).size - 2); // a kill in the middle of batch 2's write
    const b = rollingFileSink<string>({ dir, name: 'r' });
    await b.write(batch(2, ['y', 'z']));
    await b.close!();
    expect(held(sub)).toEqual(['"x"', '"y"', '"z"']);
    appendFileSync(path, 'garbage after the last frame');
    const c = rollingFileSink<string>({ dir, name: 'r' });
    await c.write(batch(3, ['w']));
    await c.close!();
    expect(held(sub)).toEqual(['"x"', '"y"', '"z"', '"w"']);
  });

  it('an in-progress file whose batches a finished file already holds (killed between rename and removal) is dropped', async () => {
    const dir = fresh();
    const sub = join(dir, 'r');
    const a = rollingFileSink<string>({ dir, name: 'r' });
    await a.write(batch(1, ['x']));
    await a.close!();
    const frames = readFileSync(join(sub, '.inprogress-all.frames'));
    const b = rollingFileSink<string>({ dir, name: 'r', maxPartBytes: 1 });
    await b.write(batch(2, ['y'])); // finishes part 1-2
    await b.close!();
    writeFileSync(join(sub, '.inprogress-all.frames'), frames); // as if its removal was lost
    const c = rollingFileSink<string>({ dir, name: 'r' });
    await c.write(batch(2, ['y']));
    await c.write(batch(3, ['z']));
    await c.close!();
    expect(held(sub)).toEqual(['"x"', '"y"', '"z"']);
  });

  it('rolls by age, also while no batch comes; gzips finished parts when asked', async () => {
    const dir = fresh();
    const sink = rollingFileSink<number>({ dir, name: 'r', maxPartAgeMs: 200, gzip: true });
    await sink.write(batch(1, [1, 2]));
    const deadline = Date.now() + 5_000;
    while (finished(join(dir, 'r')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(finished(join(dir, 'r'))).toEqual(['part-all-000000000001-000000000001.jsonl.gz']);
    expect(gunzipSync(readFileSync(join(dir, 'r', 'part-all-000000000001-000000000001.jsonl.gz'))).toString()).toBe('1\n2\n');
    await sink.close!();
  });

  it('partBy sends outputs to a part per key; each part finds its own frames on redelivery', async () => {
    const dir = fresh();
    const sink = rollingFileSink<{ p: number; v: string }>({ dir, name: 'r', partBy: (o) => `p/${o.p}`, maxPartBytes: 1 });
    await sink.write(batch(1, [{ p: 0, v: 'a' }, { p: 1, v: 'b' }, { p: 0, v: 'c' }]));
    await sink.write(batch(1, [{ p: 0, v: 'a' }, { p: 1, v: 'b' }, { p: 0, v: 'c' }]));
    await sink.close!();
    expect(finished(join(dir, 'r'))).toEqual(['part-p%2F0-000000000001-000000000001.jsonl', 'part-p%2F1-000000000001-000000000001.jsonl']);
    expect(readFileSync(join(dir, 'r', 'part-p%2F0-000000000001-000000000001.jsonl'), 'utf8')).toBe('{"p":0,"v":"a"}\n{"p":0,"v":"c"}\n');
  });

  it('rejects outputs its format cannot write, having written nothing', async () => {
    const dir = fresh();
    const sink = rollingFileSink<unknown>({ dir, name: 'r' });
    await expect(sink.write(batch(1, [1, 2n]))).rejects.toBeInstanceOf(SinkRejectedError);
    await sink.write(batch(1, [1]));
    await sink.close!();
    expect(held(join(dir, 'r'))).toEqual(['1']);
  });

  it("refuses a batch of another checkpoint (the directory's owner marker, as fileSink)", async () => {
    const dir = fresh();
    await rollingFileSink<number>({ dir, name: 'r' }).write({ ...batch(1, [1]), checkpoint: 'cp-a' });
    await expect(rollingFileSink<number>({ dir, name: 'r' }).write({ ...batch(1, [1]), checkpoint: 'cp-b' })).rejects.toBeInstanceOf(SinkLedgerMismatchError);
  });

  it.each([['in progress', 1 << 30], ['finished at every batch', 1]])('passes checkIdempotentSink (%s)', async (_label, maxPartBytes) => {
    const dir = fresh();
    const report = await checkIdempotentSink<{ id: number }>({
      sink: () => rollingFileSink({ dir, name: 'r', maxPartBytes }),
      batches: Array.from({ length: 8 }, (_, b) => Array.from({ length: 1 + (b % 3) }, (_, i) => ({ id: b * 10 + i }))),
      read: async () => (existsSync(join(dir, 'r')) ? held(join(dir, 'r')).map((l) => JSON.parse(l) as unknown) : []),
      ordered: true,
    });
    expect(report.writes).toBe(16);
  });
});
