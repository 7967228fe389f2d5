// The embedded log: a partitioned append-only log on local disk.
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, EmbeddedLog, embeddedLogSource, Engine, memorySink, type SourceRecord } from 'tidemark';
import { FULL_CHECK_MS } from '../../src/sources/embedded-log';
import { coverageEnv } from '../support/coverage-env';
import { cliPath, killAll, nodeScript, repoRoot } from '../support/processes';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-elog-');
let n = 0;
const fresh = (): string => join(root, `log${++n}`);

afterEach(killAll);

async function readAll(log: EmbeddedLog, partition: number, from = 0, until?: number, chunk?: number): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const c of log.read(partition, from, until ?? (await log.end(partition)), chunk)) out.push(...c);
  return out;
}

const str = (b: Buffer | null): string | null => (b === null ? null : b.toString());

/** FNV-1a, 32 bits: the partitioner's documented hash, restated so a change to it is caught. */
function fnv1a(text: string): number {
  let h = 2166136261;
  for (const byte of Buffer.from(text)) h = Math.imul(h ^ byte, 16777619);
  return h >>> 0;
}

/** `tidemark log …` in its own process. */
const cli = (args: string[], input?: string) => {
  const r = spawnSync(process.execPath, [cliPath, 'log', ...args], { cwd: repoRoot, env: coverageEnv(), encoding: 'utf8', input: input ?? '' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('EmbeddedLog', () => {
  it('creates a log with its topic and partitions, and reopens it as it is', async () => {
    const dir = fresh();
    const log = await EmbeddedLog.open(dir, { topic: 'clicks', partitions: 3 });
    expect([log.topic, log.partitions]).toEqual(['clicks', 3]);
    const again = await EmbeddedLog.open(dir);
    expect([again.topic, again.partitions]).toEqual(['clicks', 3]);
    await expect(EmbeddedLog.open(dir, { topic: 'other' })).rejects.toThrow(/holds topic clicks/);
    await expect(EmbeddedLog.open(fresh(), { create: false })).rejects.toThrow(/no embedded log/);
  });

  it('append/read round trip across partitions, dense offsets from 0', async () => {
    const dir = fresh();
    const log = await EmbeddedLog.open(dir, { partitions: 3 });
    const placed = await log.append([
      { value: 'a0', partition: 0, timestamp: 1000 },
      { value: 'b0', partition: 1, key: 'kb', timestamp: 1001 },
      { value: 'a1', partition: 0, key: Buffer.from([0, 1, 2]), timestamp: 1002 },
      { value: null, partition: 2, key: '', timestamp: 1003 },
      { value: Buffer.from([255, 0]), partition: 0, timestamp: 1004 },
    ]);
    expect(placed).toEqual([
      { partition: 0, offset: 0 }, { partition: 1, offset: 0 }, { partition: 0, offset: 1 }, { partition: 2, offset: 0 }, { partition: 0, offset: 2 },
    ]);
    expect(await log.append([{ value: 'a3', partition: 0 }, { value: 'b1', partition: 1 }])).toEqual([{ partition: 0, offset: 3 }, { partition: 1, offset: 1 }]);
    expect([await log.end(0), await log.end(1), await log.end(2)]).toEqual([4, 2, 1]);
    expect(await log.start(0)).toBe(0);

    const p0 = await readAll(log, 0);
    expect(p0.map((r) => r.offset)).toEqual([0, 1, 2, 3]);
    expect(p0.map((r) => r.topic)).toEqual(['events', 'events', 'events', 'events']);
    expect(p0.map((r) => str(r.value))).toEqual(['a0', 'a1', Buffer.from([255, 0]).toString(), 'a3']);
    expect([...p0[2]!.value!]).toEqual([255, 0]);
    expect(p0[0]!.key).toBeNull();
    expect([...p0[1]!.key!]).toEqual([0, 1, 2]);
    expect(p0.slice(0, 3).map((r) => r.timestamp)).toEqual([1000, 1002, 1004]);
    const [p2] = await readAll(log, 2);
    expect(p2!.value).toBeNull();
    expect(p2!.key).toEqual(Buffer.alloc(0)); // an empty key is not a null key
    expect((await readAll(log, 1)).map((r) => [str(r.key), str(r.value)])).toEqual([['kb', 'b0'], [null, 'b1']]);

    // Sub-ranges and small chunks give the same records.
    const chunks: number[][] = [];
    for await (const c of log.read(0, 1, 4, 2)) chunks.push(c.map((r) => r.offset));
    expect(chunks).toEqual([[1, 2], [3]]);
    expect(await readAll(log, 0, 2, 2)).toEqual([]);
    await expect(readAll(log, 0, 0, 5)).rejects.toThrow(/holds offsets \[0, 4\), not \[0, 5\)/);
    await expect(log.append([{ value: 'x', partition: 3 }])).rejects.toThrow(/Partition 3 does not exist/);
  });

  it('hashes keys to partitions stably: FNV-1a mod partitions, the same across instances and appends', async () => {
    const dir = fresh();
    const log = await EmbeddedLog.open(dir, { partitions: 4 });
    const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const first = await log.append(keys.map((key) => ({ key, value: key })));
    const second = await (await EmbeddedLog.open(dir)).append(keys.map((key) => ({ key, value: `${key}#2` })));
    keys.forEach((key, i) => {
      expect(first[i]!.partition).toBe(fnv1a(key) % 4);
      expect(second[i]!.partition).toBe(first[i]!.partition);
    });
    expect(new Set(first.map((p) => p.partition)).size).toBe(4);
    // Records without a key go round robin over every partition.
    const free = await log.append(Array.from({ length: 8 }, (_, i) => ({ value: `free-${i}` })));
    expect(new Set(free.map((p) => p.partition)).size).toBe(4);
  });

  it('ignores a torn tail (garbage in .log, a partial .idx entry); the next append cuts it and offsets stay dense', async () => {
    const dir = fresh();
    const log = await EmbeddedLog.open(dir, { partitions: 2 });
    await log.append(['r0', 'r1', 'r2'].map((value) => ({ value, partition: 0 })));
    const logBytes = statSync(join(dir, '0.log')).size;
    // A crashed append: records written (maybe synced), the index entry only partly.
    appendFileSync(join(dir, '0.log'), Buffer.from('GARBAGE-GARBAGE-GARBAGE'));
    appendFileSync(join(dir, '0.idx'), Buffer.from([1, 2, 3]));

    expect(await log.end(0)).toBe(3);
    expect((await readAll(log, 0)).map((r) => str(r.value))).toEqual(['r0', 'r1', 'r2']);
    const source = embeddedLogSource({ dir });
    expect(await source.offsets([{ topic: 'events', partition: 0 }], 'latest')).toEqual({ 'events/0': 3 });

    expect(await log.append([{ value: 'r3', partition: 0 }, { value: 'r4', partition: 0 }])).toEqual([{ partition: 0, offset: 3 }, { partition: 0, offset: 4 }]);
    expect((await readAll(log, 0)).map((r) => [r.offset, str(r.value)])).toEqual([[0, 'r0'], [1, 'r1'], [2, 'r2'], [3, 'r3'], [4, 'r4']]);
    expect(statSync(join(dir, '0.idx')).size).toBe(5 * 8);
    expect(statSync(join(dir, '0.log')).size).toBe(logBytes + 2 * (4 + 4 + 2 + 8));
  });

  it('trim moves earliest; reading below it is an error; reading above it works', async () => {
    const dir = fresh();
    const log = await EmbeddedLog.open(dir, { partitions: 1 });
    await log.append(Array.from({ length: 10 }, (_, i) => ({ value: `v${i}`, partition: 0 })));
    await log.trim(0, 4);
    expect(await log.start(0)).toBe(4);
    expect(await log.end(0)).toBe(10);
    await expect(readAll(log, 0, 0)).rejects.toThrow(/holds offsets \[4, 10\)/);
    await expect(readAll(log, 0, 3, 5)).rejects.toThrow();
    expect((await readAll(log, 0, 4)).map((r) => r.offset)).toEqual([4, 5, 6, 7, 8, 9]);
    const source = embeddedLogSource({ dir });
    const parts = await source.partitions();
    expect(await source.offsets(parts, 'earliest')).toEqual({ 'events/0': 4 });
    expect(await source.startingOffsets(parts)).toEqual({ 'events/0': 4 });
    // Appends go on after the end, not after the trim point; a trim past the end stops at the end.
    expect(await log.append([{ value: 'v10', partition: 0 }])).toEqual([{ partition: 0, offset: 10 }]);
    await log.trim(0, 100);
    expect(await log.start(0)).toBe(11);
  });

  it('an idle source over many partitions reads one small file per poll, and sees what another process appends or trims', async () => {
    const dir = fresh();
    const log = await EmbeddedLog.open(dir, { partitions: 2000 });
    await log.append([{ partition: 5, value: 'a' }, { partition: 1999, value: 'b' }]);
    const source = embeddedLogSource({ dir });
    const parts = await source.partitions();
    const poll = async (): Promise<[Record<string, number>, Record<string, number>]> =>
      [await source.offsets(parts, 'earliest'), await source.offsets(parts, 'latest')];
    expect((await poll())[1]).toMatchObject({ 'events/5': 1, 'events/1999': 1, 'events/0': 0 }); // the first look reads every partition

    // The module object the source calls through (esbuild's CommonJS keeps the property lookup per call).
    const fsp = require('node:fs/promises') as typeof import('node:fs/promises'); // eslint-disable-line @typescript-eslint/no-require-imports
    const calls = [jest.spyOn(fsp, 'stat'), jest.spyOn(fsp, 'readFile'), jest.spyOn(fsp, 'open')];
    const touched = (): string[] => calls.flatMap((spy) => spy.mock.calls.map(([path]) => String(path))).filter((p) => p.startsWith(dir));
    const now = jest.spyOn(Date, 'now');
    try {
      for (let i = 0; i < 10; i++) await poll();
      expect(touched()).toEqual(Array(20).fill(join(dir, 'head')));

      // Another process appends; another instance trims: the next poll sees both.
      expect(cli(['append', dir, '--partition', '1234', 'x', 'y'])).toMatchObject({ code: 0 });
      await (await EmbeddedLog.open(dir)).trim(1999, 1);
      const [earliest, latest] = await poll();
      expect([earliest['events/1999'], latest['events/1234'], latest['events/5']]).toEqual([1, 2, 1]);

      // An appender that does not rewrite the head (a build from before it existed) is seen by the full look every FULL_CHECK_MS.
      appendFileSync(join(dir, '7.idx'), Buffer.alloc(8));
      expect((await poll())[1]['events/7']).toBe(0);
      now.mockReturnValue(Date.now() + FULL_CHECK_MS);
      expect((await poll())[1]['events/7']).toBe(1);
    } finally {
      for (const spy of [...calls, now]) spy.mockRestore();
    }
  });

  it('a daemon idle over many partitions reads only the head file per poll, and takes what another process appends', async () => {
    const dir = fresh();
    await (await EmbeddedLog.open(dir, { partitions: 1000 })).append([{ partition: 3, value: 'a' }]);
    const sink = memorySink<string>();
    const committed: number[] = [];
    const engine = new Engine(defineJob<string>({
      name: 'idle', source: embeddedLogSource({ dir }), sinks: [sink], transform: (rs) => rs.map((r) => str(r.value)!), batch: { pollIntervalMs: 20 },
    }), { checkpointDir: fresh(), onBatch: (b) => committed.push(b.id) });
    const running = engine.run();
    const until = async (done: () => boolean): Promise<void> => {
      while (!done()) await new Promise((r) => setTimeout(r, 20));
    };
    const fsp = require('node:fs/promises') as typeof import('node:fs/promises'); // eslint-disable-line @typescript-eslint/no-require-imports
    const calls = [jest.spyOn(fsp, 'stat'), jest.spyOn(fsp, 'readFile'), jest.spyOn(fsp, 'open')];
    const touched = (): string[] => calls.flatMap((spy) => spy.mock.calls.map(([path]) => String(path))).filter((p) => p.startsWith(dir));
    try {
      await until(() => committed.length === 1);
      for (const spy of calls) spy.mockClear();
      await until(() => touched().length >= 10); // ten polls
      expect(new Set(touched())).toEqual(new Set([join(dir, 'head')]));
      expect(cli(['append', dir, '--partition', '999', 'b'])).toMatchObject({ code: 0 });
      await until(() => committed.length === 2);
    } finally {
      for (const spy of calls) spy.mockRestore();
      engine.stop();
      await running;
    }
    expect(sink.all()).toEqual(['a', 'b']);
  });

  it('embeddedLogSource reads exactly the given ranges and seeds an empty log once', async () => {
    const dir = fresh();
    let seeded = 0;
    const seed = () => {
      seeded++;
      return Array.from({ length: 20 }, (_, i) => ({ value: `s${i}`, partition: i % 2 }));
    };
    const source = embeddedLogSource({ dir, topic: 'seeded', partitions: 2, seedIfEmpty: seed });
    expect(source.id).toBe('embedded:seeded');
    const parts = await source.partitions();
    expect(await source.offsets(parts, 'latest')).toEqual({ 'seeded/0': 10, 'seeded/1': 10 });
    const got: string[] = [];
    for await (const c of source.read([{ topic: 'seeded', partition: 1, from: 2, until: 5 }, { topic: 'seeded', partition: 0, from: 9, until: 10 }], new AbortController().signal)) {
      got.push(...c.map((r) => `${r.partition}@${r.offset}=${str(r.value)}`));
    }
    expect(got).toEqual(['1@2=s5', '1@3=s7', '1@4=s9', '0@9=s18']);
    await embeddedLogSource({ dir, topic: 'seeded', seedIfEmpty: seed }).partitions();
    expect(seeded).toBe(1);
    expect(source.id).toBe('embedded:seeded');
    expect(await embeddedLogSource({ dir, topic: 'seeded', startingOffsets: 'latest' }).startingOffsets(parts)).toEqual({ 'seeded/0': 10, 'seeded/1': 10 });
  });

  it('a seed interrupted by SIGKILL leaves no partial log: the next start seeds it whole', async () => {
    const N = 400_000;
    const seeder = (dir: string) => nodeScript(`
      const [dir, n] = process.argv.slice(1);
      const source = tidemark.embeddedLogSource({
        dir, partitions: 4, seedIfEmpty: () => Array.from({ length: Number(n) }, (_, i) => ({ value: 'seed-' + i, partition: i % 4 })),
      });
      source.partitions().then(() => console.log('seeded'), (e) => { console.error(e); process.exit(1); });
    `, [dir, String(N)]);
    const idxSizes = (dir: string): number[] => [0, 1, 2, 3].map((p) => {
      for (const d of [dir, `${dir}.seeding`]) {
        try {
          return statSync(join(d, `${p}.idx`)).size;
        } catch {
          // not there (yet)
        }
      }
      return 0;
    });
    // Kill while the seed is half written: some partitions appended, some not.
    let dir = '';
    let killedMidSeed = false;
    for (let attempt = 0; attempt < 5 && !killedMidSeed; attempt++) {
      dir = fresh();
      const child = seeder(dir);
      let sizes = idxSizes(dir);
      while (child.proc.exitCode === null && !sizes.some((s) => s > 0)) {
        await new Promise((r) => setTimeout(r, 1));
        sizes = idxSizes(dir);
      }
      child.proc.kill('SIGKILL');
      await child.exited;
      sizes = idxSizes(dir);
      killedMidSeed = sizes.some((s) => s > 0) && sizes.some((s) => s < (N / 4) * 8);
    }
    expect(killedMidSeed).toBe(true);

    const restart = seeder(dir);
    await restart.waitForLine(/^seeded$/);
    const log = await EmbeddedLog.open(dir);
    for (let p = 0; p < 4; p++) expect(await log.end(p)).toBe(N / 4);
    const last = await readAll(log, 3, N / 4 - 1);
    expect(str(last[0]!.value)).toBe(`seed-${N - 1}`);
    expect(existsSync(`${dir}.seeding`)).toBe(false);
  });

  it('two processes appending at once: 1000 dense offsets, every record exactly once, each writer in order', async () => {
    const dir = fresh();
    await EmbeddedLog.open(dir, { partitions: 3 });
    const go = join(dir, 'go');
    const writer = (tag: string) => nodeScript(`
      const [dir, tag, go] = process.argv.slice(1);
      const fs = require('node:fs');
      (async () => {
        const log = await tidemark.EmbeddedLog.open(dir);
        console.log('ready');
        while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 5));
        const placed = [];
        for (let i = 0; i < 50; i++) {
          const batch = Array.from({ length: 10 }, (_, j) => ({ value: tag + '-' + (i * 10 + j) }));
          const at = await log.append(batch);
          at.forEach((p, j) => placed.push([p.partition, p.offset, batch[j].value]));
        }
        console.log(JSON.stringify(placed));
      })().catch((e) => { console.error(e); process.exit(1); });
    `, [dir, tag, go]);
    const a = writer('A');
    const b = writer('B');
    await Promise.all([a.waitForLine(/^ready$/), b.waitForLine(/^ready$/)]);
    writeFileSync(go, '');
    const [ea, eb] = await Promise.all([a.exited, b.exited]);
    expect([ea.code, eb.code, a.stderr(), b.stderr()]).toEqual([0, 0, '', '']);

    const log = await EmbeddedLog.open(dir);
    const stored = new Map<string, string>();
    let total = 0;
    for (let p = 0; p < 3; p++) {
      const records = await readAll(log, p);
      total += records.length;
      expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => i));
      for (const r of records) stored.set(`${p}@${r.offset}`, str(r.value)!);
    }
    expect(total).toBe(1000);
    const values = [...stored.values()];
    expect(new Set(values).size).toBe(1000);
    for (const child of [a, b]) {
      const placed = JSON.parse(child.stdout().trim().split('\n').pop()!) as Array<[number, number, string]>;
      expect(placed).toHaveLength(500);
      // The offsets append() returned are where the records are.
      for (const [p, o, v] of placed) expect(stored.get(`${p}@${o}`)).toBe(v);
      // Within a partition, each writer's records keep their order.
      for (let p = 0; p < 3; p++) {
        const mine = placed.filter(([q]) => q === p);
        expect(mine.map(([, o]) => o)).toEqual([...mine.map(([, o]) => o)].sort((x, y) => x - y));
      }
    }
  });
});

describe('tidemark log', () => {
  it('create, append (arguments and stdin), tail round trip', async () => {
    const dir = fresh();
    expect(cli(['create', dir, '--partitions', '2', '--topic', 'clicks'])).toEqual({ code: 0, stdout: `embedded log ${dir}: topic clicks, 2 partitions\n`, stderr: '' });
    expect(cli(['append', dir, '--partition', '1', '{"page":"/a"}', '{"page":"/b"}'])).toMatchObject({ code: 0, stdout: 'appended 2 records to clicks\n' });
    expect(cli(['append', dir, '--key', 'u1', '--partition', '0'], 'one\ntwo\n\nthree\n')).toMatchObject({ code: 0, stdout: 'appended 3 records to clicks\n' });

    const tail = cli(['tail', dir]);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toBe([
      'clicks/0@0\tu1\tone', 'clicks/0@1\tu1\ttwo', 'clicks/0@2\tu1\tthree',
      'clicks/1@0\t\t{"page":"/a"}', 'clicks/1@1\t\t{"page":"/b"}', '',
    ].join('\n'));
    expect(cli(['tail', dir, '--partition', '0', '--limit', '1']).stdout).toBe('clicks/0@2\tu1\tthree\n');
    expect(cli(['tail', dir, '--partition', '0', '--from', '1', '--limit', '1']).stdout).toBe('clicks/0@1\tu1\ttwo\n');

    // What the CLI wrote is what the library reads.
    const log = await EmbeddedLog.open(dir);
    expect((await readAll(log, 1)).map((r) => str(r.value))).toEqual(['{"page":"/a"}', '{"page":"/b"}']);
  });

  it('errors are one line with the usage error code', () => {
    const dir = fresh();
    const missing = cli(['tail', dir]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^tidemark: There is no embedded log in .*\n$/);
    expect(existsSync(dir)).toBe(false);
    cli(['create', dir, '--partitions', '1']);
    const bad = cli(['append', dir, '--partition', '5', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^tidemark: Partition 5 does not exist.*\n$/);
  });
});
