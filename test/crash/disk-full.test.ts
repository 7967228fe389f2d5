// The disk fills up: under the checkpoint during a STAGE write (the daemon stops with a
// clear message and its own exit code, nothing is delivered for that batch), under the
// file sink during a delivery (no cut-off batch file is ever committed: the batch stays
// staged, exit 9), and under the embedded log during an append (the offsets it reports are
// exactly the records that read back whole). After space returns a restart finishes with
// exactly-once output. Each lives on a small tmpfs mounted for the test (this needs root,
// which CI and the development machines have).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedLog, LogWriteError } from 'tidemark';
import { coverageEnv } from '../support/coverage-env';

const root = join(__dirname, '..', '..');
const base = join(tmpdir(), `tidemark-diskfull-${process.pid}`);
const mnt = join(base, 'mnt');

function run(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'tidemark.js'), ...args], { cwd: root, env: coverageEnv(), encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

beforeAll(() => {
  mkdirSync(mnt, { recursive: true });
  // 12 MiB: two batches of ~2 MiB staged at once (pipelined) sit in LevelDB's write log until it is compacted.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt]);
});

const mounted = [mnt];
/** A fresh tmpfs of `size` (mount's syntax: 1m, 256k) under the test's directory. */
function tmpfs(name: string, size: string): string {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounted.push(dir);
  return dir;
}
/** Frees space the way an operator would, without deleting anything: grows the file system. */
const grow = (dir: string, size: string): void => void execFileSync('mount', ['-o', `remount,size=${size}`, dir]);

afterAll(() => {
  for (const dir of mounted) spawnSync('umount', [dir]);
  rmSync(base, { recursive: true, force: true });
});

/** The batch files of a file sink's directory (not its owner marker, .tidemark-checkpoint.json). */
const batchFilesIn = (dir: string): string[] => readdirSync(dir).filter((f) => /^batch-\d+\.jsonl$/.test(f));

interface Line { p: number; o: number; v: string }
/** Every line of every batch file; throws on a line that is not whole JSON. */
function deliveredLines(dir: string): Line[] {
  return batchFilesIn(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line));
}

it('stops cleanly when the disk is full during a stage write, and finishes exactly once after space returns', async () => {
  const job = join(base, 'job.ts');
  writeFileSync(job, `
import { defineJob, embeddedLogSource, fileSink } from 'tidemark';
export default defineJob({
  name: 'diskfull',
  source: embeddedLogSource({ dir: ${JSON.stringify(join(base, 'log'))}, partitions: 2 }),
  sinks: [fileSink({ dir: ${JSON.stringify(join(base, 'out'))} })],
  transform: (records) => records.map((r) => ({ o: r.offset, p: r.partition, v: r.value!.toString() })),
  batch: { maxRecordsPerPartition: 1000 },
});
`);
  const log = await EmbeddedLog.open(join(base, 'log'), { partitions: 2 });
  // Random values: LevelDB compresses its tables, so outputs must not compress away.
  await log.append(Array.from({ length: 6000 }, (_, i) => ({ value: `${i}:${randomBytes(750).toString('base64')}`, partition: i % 2 })));
  const checkpoint = join(mnt, 'cp');

  // One batch to create the checkpoint, then fill the file system to the brim.
  expect(run(['run', job, '--checkpoint', checkpoint, '--max-batches', '1']).status).toBe(0);
  const filler = join(mnt, 'filler');
  const free = Number(execFileSync('df', ['--output=avail', '-B1', mnt], { encoding: 'utf8' }).split('\n')[1]);
  writeFileSync(filler, Buffer.alloc(Math.max(0, free - 512 * 1024)));

  const full = run(['run', job, '--checkpoint', checkpoint, '--once']);
  expect(full.status).toBe(12);
  expect(full.stdout).toMatch(/"msg":"batch 2 committed"|"msg":"new checkpoint"|starting job/);
  expect(full.stderr).toMatch(/Could not write checkpoint .*no space left on the device.*Nothing was lost/);
  expect(full.stderr).not.toMatch(/\n\s+at /); // no stack trace
  // Every batch before the failing one is committed; the failing one was not delivered.
  const stopped = JSON.parse(run(['inspect', checkpoint, '--json']).stdout) as { inFlight: { id: number; state: string } | null; lastCommitted: number };
  expect(stopped.inFlight?.state ?? 'none').not.toBe('staged');
  const delivered = batchFilesIn(join(base, 'out', 'files')).sort();
  expect(delivered).toEqual(Array.from({ length: stopped.lastCommitted }, (_, i) => `batch-${i + 1}.jsonl`).sort());
  expect(stopped.lastCommitted).toBeLessThan(6);

  rmSync(filler);
  const again = run(['run', job, '--checkpoint', checkpoint, '--once']);
  expect(again.status).toBe(0);
  const seen = new Map<string, number>();
  for (const f of batchFilesIn(join(base, 'out', 'files'))) {
    for (const line of readFileSync(join(base, 'out', 'files', f), 'utf8').split('\n').filter(Boolean)) {
      const { p, o } = JSON.parse(line) as { p: number; o: number };
      seen.set(`${p}:${o}`, (seen.get(`${p}:${o}`) ?? 0) + 1);
    }
  }
  expect(seen.size).toBe(6000);
  expect([...seen.values()].every((n) => n === 1)).toBe(true);
  const inspect = JSON.parse(run(['inspect', checkpoint, '--json']).stdout) as { inFlight: unknown; positions: Record<string, number> };
  expect(inspect.inFlight).toBeNull();
  expect(inspect.positions).toEqual({ 'events/0': 3000, 'events/1': 3000 });
});

it('never commits a cut-off batch file when the sink disk fills during a delivery, and delivers exactly once after space returns', async () => {
  const out = tmpfs('sink', '1m');
  const dir = join(base, 'deliver');
  const job = join(dir, 'job.ts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(job, `
import { defineJob, embeddedLogSource, fileSink } from 'tidemark';
export default defineJob({
  name: 'diskfull-deliver',
  source: embeddedLogSource({ dir: ${JSON.stringify(join(dir, 'log'))}, partitions: 2 }),
  sinks: [fileSink({ dir: ${JSON.stringify(out)} })],
  transform: (records) => records.map((r) => ({ o: r.offset, p: r.partition, v: r.value!.toString() })),
  batch: { maxRecordsPerPartition: 1000 },
  sinkAttempts: 2,
});
`);
  const log = await EmbeddedLog.open(join(dir, 'log'), { partitions: 2 });
  // Batch files of ~650 KB, each one write (under the sink's 1 MiB pieces): one of them
  // fits the 1 MiB file system only in part, and the old code committed that part.
  const values = Array.from({ length: 6000 }, (_, i) => `${i}:${randomBytes(220).toString('base64')}`);
  await log.append(values.map((value, i) => ({ value, partition: i % 2 })));
  const checkpoint = join(dir, 'cp');

  const full = run(['run', job, '--checkpoint', checkpoint, '--once']);
  expect(full.status).toBe(9);
  const failed = Number(/Sink files failed to write batch (\d+): ENOSPC.*The batch stays staged/.exec(full.stderr)?.[1]);
  expect(failed).toBeGreaterThan(1);
  const stopped = JSON.parse(run(['inspect', checkpoint, '--json']).stdout) as {
    inFlight: { id: number; state: string } | null; lastCommitted: number; positions: Record<string, number>;
  };
  expect(stopped).toMatchObject({ lastCommitted: failed - 1, inFlight: { id: failed, state: 'staged' } });
  // Only the whole files of the committed batches (no temp file holding the space), holding
  // every record below the positions.
  expect(batchFilesIn(join(out, 'files')).sort()).toEqual(Array.from({ length: failed - 1 }, (_, i) => `batch-${i + 1}.jsonl`).sort());
  const before = deliveredLines(join(out, 'files'));
  expect(before).toHaveLength(stopped.positions['events/0']! + stopped.positions['events/1']!);
  for (const l of before) expect(l.o).toBeLessThan(stopped.positions[`events/${l.p}`]!);

  grow(out, '8m');
  const again = run(['run', job, '--checkpoint', checkpoint, '--once']);
  expect(again.status).toBe(0);
  const lines = deliveredLines(join(out, 'files'));
  expect(lines).toHaveLength(6000);
  expect(new Set(lines.map((l) => `${l.p}:${l.o}`)).size).toBe(6000);
  for (const l of lines) expect(l.v).toBe(values[l.o * 2 + l.p]);
  const inspect = JSON.parse(run(['inspect', checkpoint, '--json']).stdout) as { inFlight: unknown; positions: Record<string, number> };
  expect(inspect.inFlight).toBeNull();
  expect(inspect.positions).toEqual({ 'events/0': 3000, 'events/1': 3000 });
});

it('an embedded-log append on a full disk reports exactly the records it wrote whole, and leaves nothing else', async () => {
  const dir = tmpfs('log', '256k');
  const log = await EmbeddedLog.open(dir, { partitions: 2 });
  // One record each first: the index files then have room in their page, so the index
  // write of the big append fits where its records do not (the old code's empty records).
  const values = ['first 0', 'first 1', ...Array.from({ length: 200 }, (_, i) => `${i}:${randomBytes(1500).toString('base64')}`)];
  await log.append([{ key: 'k0', value: values[0]!, partition: 0 }, { key: 'k1', value: values[1]!, partition: 1 }]);
  let appended: ReadonlyArray<{ partition: number; offset: number } | undefined>;
  try {
    appended = await log.append(values.slice(2).map((value, i) => ({ key: `k${i + 2}`, value, partition: i % 2 })));
  } catch (err) {
    expect(err).toBeInstanceOf(LogWriteError);
    expect((err as LogWriteError).message).toMatch(/no space left on the device/);
    appended = (err as LogWriteError).appended;
  }
  const written = [{ partition: 0, offset: 0, i: 0 }, { partition: 1, offset: 0, i: 1 }, ...appended.flatMap((a, i) => (a ? [{ ...a, i: i + 2 }] : []))];
  // 400 KB on 256 KB: some of it cannot be there.
  expect(written.length).toBeLessThan(202);
  for (const p of [0, 1]) {
    const mine = written.filter((w) => w.partition === p);
    expect(await log.end(p)).toBe(mine.length);
    const read = [];
    for await (const chunk of log.read(p, 0, mine.length)) read.push(...chunk);
    expect(read.map((r) => [r.offset, r.key?.toString(), r.value?.toString()])).toEqual(mine.map((w) => [w.offset, `k${w.i}`, values[w.i]]));
  }

  // With space back, the log goes on from where it stands.
  grow(dir, '2m');
  const ends = [await log.end(0), await log.end(1)];
  const more = await log.append([{ value: 'after', partition: 0 }, { value: 'after', partition: 1 }]);
  expect(more).toEqual([{ partition: 0, offset: ends[0] }, { partition: 1, offset: ends[1] }]);
});
