// The file sink in group mode (docs/scale-out.md): outputs named by partition and range and
// published without ever replacing a file; claim markers per (partition, epoch) fence a stale
// owner; several daemons (checkpoints) share the directory.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileSink, PartitionFencedError, SinkLedgerMismatchError, type SinkBatch } from 'tidemark';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-filesink-group-');
let n = 0;
const fresh = (): string => join(root, `d${++n}`);

/** One partition's range [from, until) by the owner of `epoch` from checkpoint `checkpoint`; outputs are given or the offsets. */
const owned = (partition: number, epoch: number, from: number, until: number, checkpoint: string, outputs?: string[]): SinkBatch<string> => ({
  id: 1, job: 'j', checkpoint, ranges: [{ topic: 'clicks', partition, from, until }],
  outputs: outputs ?? Array.from({ length: until - from }, (_, i) => `o${from + i}`), owner: { topic: 'clicks', partition, epoch },
});
const parts = (dir: string): string[] => readdirSync(join(dir, 'files')).filter((f) => f.startsWith('part-')).sort();
const read = (dir: string, file: string): string => readFileSync(join(dir, 'files', file), 'utf8');

describe('fileSink in group mode', () => {
  it('names the file by partition and range; a second write of the range (another owner, other content) leaves the first', async () => {
    const dir = fresh();
    const a = fileSink<string>({ dir });
    const b = fileSink<string>({ dir });
    await a.claim!({ job: 'j', topic: 'clicks', partition: 0, epoch: 1 });
    await a.write(owned(0, 1, 0, 3, 'cp-a', ['x0', 'x1', 'x2']));
    await b.claim!({ job: 'j', topic: 'clicks', partition: 0, epoch: 2 });
    await b.write(owned(0, 2, 0, 3, 'cp-b', ['y0', 'y1', 'y2'])); // the new owner's rerun of the planned range
    await b.write(owned(0, 2, 3, 5, 'cp-b'));
    expect(parts(dir)).toEqual(['part-clicks-0-0-3.jsonl', 'part-clicks-0-3-5.jsonl']);
    expect(read(dir, 'part-clicks-0-0-3.jsonl')).toBe('"x0"\n"x1"\n"x2"\n');
    expect(read(dir, 'part-clicks-0-3-5.jsonl')).toBe('"o3"\n"o4"\n');
    expect(readdirSync(join(dir, 'files')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a stale owner (older epoch than the newest claim) writes nothing; its claim is refused too', async () => {
    const dir = fresh();
    const zombie = fileSink<string>({ dir });
    const successor = fileSink<string>({ dir });
    await zombie.claim!({ job: 'j', topic: 'clicks', partition: 4, epoch: 7 });
    await zombie.write(owned(4, 7, 0, 2, 'cp-a'));
    await successor.claim!({ job: 'j', topic: 'clicks', partition: 4, epoch: 9 });
    const refused = await zombie.write(owned(4, 7, 2, 4, 'cp-a')).then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(PartitionFencedError);
    expect((refused as Error).message).toMatch(/fileSink files refused a write for clicks\/4 by the owner of epoch 7: epoch 9 owns it now/);
    await expect(zombie.claim!({ job: 'j', topic: 'clicks', partition: 4, epoch: 8 })).rejects.toThrow(PartitionFencedError);
    expect(parts(dir)).toEqual(['part-clicks-4-0-2.jsonl']);
    // one marker per partition is enough: the older ones are removed
    expect(readdirSync(join(dir, 'files', '.tidemark-claims', 'clicks-4'))).toEqual(['epoch-9']);
    // other partitions are not fenced by it
    await zombie.write(owned(5, 7, 0, 1, 'cp-a'));
    expect(parts(dir)).toEqual(['part-clicks-4-0-2.jsonl', 'part-clicks-5-0-1.jsonl']);
  });

  it('daemons of one group-mode job (several checkpoints) share the directory: no owner marker is written or checked', async () => {
    const dir = fresh();
    const sinks = ['cp-a', 'cp-b', 'cp-c'].map(() => fileSink<string>({ dir }));
    await Promise.all(sinks.map((s, i) => s.write(owned(i, 1, 0, 2, `cp-${i}`))));
    expect(parts(dir)).toEqual(['part-clicks-0-0-2.jsonl', 'part-clicks-1-0-2.jsonl', 'part-clicks-2-0-2.jsonl']);
    expect(existsSync(join(dir, 'files', '.tidemark-checkpoint.json'))).toBe(false);
    // single-daemon mode keeps its rule in its own directories
    const single = fresh();
    await fileSink<string>({ dir: single }).write({ id: 1, checkpoint: 'cp-a', ranges: [], outputs: ['a'] });
    await expect(fileSink<string>({ dir: single }).write({ id: 1, checkpoint: 'cp-b', ranges: [], outputs: ['b'] })).rejects.toThrow(SinkLedgerMismatchError);
  });

  it('two owners publishing one range at once: exactly one file, whole, from one of them', async () => {
    const dir = fresh();
    const outputs = (tag: string) => Array.from({ length: 20_000 }, (_, i) => `${tag}${i}`);
    const a = fileSink<string>({ dir });
    const b = fileSink<string>({ dir });
    await Promise.all([a.write(owned(6, 1, 0, 20_000, 'cp-a', outputs('a'))), b.write(owned(6, 2, 0, 20_000, 'cp-b', outputs('b')))]);
    expect(parts(dir)).toEqual(['part-clicks-6-0-20000.jsonl']);
    const text = read(dir, 'part-clicks-6-0-20000.jsonl');
    expect([outputs('a'), outputs('b')].map((o) => `${o.map((x) => JSON.stringify(x)).join('\n')}\n`)).toContain(text);
    expect(readdirSync(join(dir, 'files')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a write that is not exactly the owner\'s partition is a configuration error', async () => {
    const sink = fileSink<string>({ dir: fresh() });
    await expect(sink.write({ ...owned(0, 1, 0, 2, 'cp'), ranges: [] })).rejects.toThrow(/must hold exactly the range of clicks\/0/);
  });
});
