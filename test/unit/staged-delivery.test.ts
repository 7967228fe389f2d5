// What is delivered is what was staged, through the engine and the file sink: an output the
// staging codec would not give back unchanged is a TransformError (exit 8) at stage time,
// naming the batch and the output, or a dead letter; a value the file sink cannot write
// (BigInt, a cycle) is a rejection, not a failure retried on every restart.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, Engine, fileSink, generatorSource, memorySink, type DeadLetter, type MemorySink, type RejectedOutput, type SourceRecord } from 'tidemark';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-staged-');
let n = 0;
const fresh = (): string => join(root, `t${++n}`);

class Click {
  constructor(readonly page: string, readonly at: Date) {}
  toJSON(): unknown {
    return { page: this.page.toUpperCase(), day: this.at.toISOString().slice(0, 10) };
  }
}

class Crash extends Error {}
const crashAt = (point: string) => (phase: string): void => {
  if (phase === point) throw new Crash(phase);
};

const source = () => generatorSource({ partitions: 1, size: 3 });
/** The batch files of the sink directory (not the marker naming the checkpoint that owns it). */
const files = (dir: string): Record<string, string> => {
  const out = join(dir, 'files');
  let names: string[] = [];
  try {
    names = readdirSync(out).filter((f) => f.startsWith('batch-'));
  } catch {
    return {};
  }
  return Object.fromEntries(names.map((f) => [f, readFileSync(join(out, f), 'utf8')]));
};

async function failure(p: Promise<unknown>): Promise<Error & { code?: string; exitCode?: number }> {
  return p.then(() => {
    throw new Error('expected a failure');
  }, (e: unknown) => e as Error);
}

describe('outputs the staging codec cannot give back unchanged', () => {
  it('a class with toJSON() is refused at stage time (exit 8, batch and output named), before any file is written', async () => {
    const dir = fresh();
    const job = defineJob({
      name: 'clicks', source: source(), sinks: [fileSink({ dir })],
      transform: (records: SourceRecord[]) => records.map((r) => new Click(`p${r.offset}`, new Date(0))),
    });
    const err = await failure(new Engine(job, { checkpointDir: join(dir, 'cp') }).run({ once: true }));
    expect(err).toMatchObject({ code: 'TIDEMARK_TRANSFORM_FAILED', exitCode: 8 });
    expect(err.message).toContain('in batch 1 at output #0 of 3: an instance of class Click (its prototype would be lost: return plain objects)');
    expect(files(dir)).toEqual({});
  });

  it('the same values as plain objects: the first delivery and a redelivery after a kill at delivered:files write the same file', async () => {
    const dir = fresh();
    const make = () => defineJob({
      name: 'clicks', source: source(), sinks: [fileSink({ dir })],
      transform: (records: SourceRecord[]) => records.map((r) => ({ page: `p${r.offset}`, at: new Date(0), key: Buffer.from('k') })),
    });
    await expect(new Engine(make(), { checkpointDir: join(dir, 'cp'), crashPoint: crashAt('delivered:files') }).run({ once: true })).rejects.toThrow(Crash);
    const first = files(dir);
    expect(Object.keys(first)).toEqual(['batch-1.jsonl']);
    await new Engine(make(), { checkpointDir: join(dir, 'cp') }).run({ once: true });
    expect(files(dir)).toEqual(first);
  });

  it.each([
    ['a function', { page: 'x', handler: () => 1 }, 'a function at .handler'],
    ['a symbol', { page: 'x', tags: [Symbol('s')] }, 'a symbol at .tags[0]'],
    ['an Error', { page: 'x', err: Object.assign(new Error('boom'), { status: 500 }) }, 'an Error at .err (v8 keeps only its message and stack'],
  ])('%s is exit 8 naming the batch and the output, not exit 1', async (_what, bad, named) => {
    const dir = fresh();
    const job = defineJob({
      name: 'bad', source: source(), sinks: [memorySink<unknown>()],
      transform: (records: SourceRecord[]) => records.map((r) => (r.offset === 2 ? bad : { page: 'x', handler: null })),
    });
    const err = await failure(new Engine(job, { checkpointDir: dir }).run({ once: true }));
    expect(err).toMatchObject({ code: 'TIDEMARK_TRANSFORM_FAILED', exitCode: 8 });
    expect(err.message).toContain(`in batch 1 at output #2 of 3: ${named}`);
  });

  it("under onTransformError 'dead-letter' the output goes to the dead-letter sink as its description; a redelivery writes the same", async () => {
    const dir = fresh();
    const make = (dead: MemorySink<DeadLetter | RejectedOutput>) => defineJob({
      name: 'dl', source: source(), sinks: [fileSink({ dir })], onTransformError: 'dead-letter', deadLetterSink: dead,
      transform: (records: SourceRecord[]) => records.map((r) => (r.offset === 1 ? new Click('home', new Date(0)) : { page: `p${r.offset}` })),
    });
    const dead1 = memorySink<DeadLetter | RejectedOutput>('dead');
    await expect(new Engine(make(dead1), { checkpointDir: join(dir, 'cp'), crashPoint: crashAt('delivered:dead') }).run({ once: true })).rejects.toThrow(Crash);
    const first = files(dir);
    expect(first).toEqual({ 'batch-1.jsonl': '{"page":"p0"}\n{"page":"p2"}\n' });
    const dead2 = memorySink<DeadLetter | RejectedOutput>('dead');
    await new Engine(make(dead2), { checkpointDir: join(dir, 'cp') }).run({ once: true });
    expect(files(dir)).toEqual(first);
    const letter = {
      sink: '(stage)', batchId: 1, index: 1, output: "Click { page: 'home', at: 1970-01-01T00:00:00.000Z }",
      error: 'it cannot be staged: an instance of class Click (its prototype would be lost: return plain objects)',
    };
    expect(dead1.batches.get(1)).toEqual([letter]);
    expect(dead2.batches.get(1)).toEqual([letter]);
  });
});

describe('values the file sink cannot write', () => {
  it('a BigInt or a cycle is a SinkRejectedError on the first delivery, not retried; nothing is written', async () => {
    const dir = fresh();
    const cyclic: Record<string, unknown> = { page: 'c' };
    cyclic.self = cyclic;
    let formats = 0;
    const job = defineJob({
      name: 'big', source: source(), sinks: [fileSink({ dir, format: (o) => (formats++, JSON.stringify(o)) })], sinkAttempts: 5,
      transform: (records: SourceRecord[]) => records.map((r) => (r.offset === 0 ? { n: 1n } : r.offset === 2 ? cyclic : { n: 2 })),
    });
    const err = await failure(new Engine(job, { checkpointDir: join(dir, 'cp') }).run({ once: true }));
    expect(err).toMatchObject({ code: 'TIDEMARK_SINK_REJECTED', exitCode: 9 });
    expect(err.message).toContain('Sink files rejected batch 1: output #0 "{ n: 1n }": the file\'s format cannot write it: Do not know how to serialize a BigInt (and 1 more)');
    expect((err as unknown as { rejected: Array<{ index: number }> }).rejected.map((r) => r.index)).toEqual([0, 2]);
    expect(formats).toBe(4); // one pass, stopped at output 0, then the look for every unwritable one: no retry
    expect(files(dir)).toEqual({});
  });

  it("under onSinkError 'dead-letter' the file holds the rest and the dead-letter sink gets the rejected outputs", async () => {
    const dir = fresh();
    const dead = memorySink<DeadLetter | RejectedOutput>('dead');
    const job = defineJob({
      name: 'big', source: source(), sinks: [fileSink({ dir })], onSinkError: 'dead-letter', deadLetterSink: dead,
      transform: (records: SourceRecord[]) => records.map((r) => (r.offset === 1 ? { n: 10n } : { n: r.offset })),
    });
    await new Engine(job, { checkpointDir: join(dir, 'cp') }).run({ once: true });
    expect(files(dir)).toEqual({ 'batch-1.jsonl': '{"n":0}\n{"n":2}\n' });
    expect(dead.batches.get(1)).toEqual([expect.objectContaining({ sink: 'files', index: 1, output: '{ n: 10n }' })]);
  });
});
