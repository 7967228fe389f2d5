// The disk fills up under the checkpoint during a STAGE write: the daemon stops with a
// clear message and its own exit code, nothing is delivered for that batch, and after
// space returns a restart retries the batch and finishes with exactly-once output.
// The checkpoint lives on a small tmpfs mounted for the test (this needs root, which
// CI and the development machines have).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedLog } from 'tidemark';

const root = join(__dirname, '..', '..');
const base = join(tmpdir(), `tidemark-diskfull-${process.pid}`);
const mnt = join(base, 'mnt');

function run(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'tidemark.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

beforeAll(() => {
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
});

afterAll(() => {
  spawnSync('umount', [mnt]);
  rmSync(base, { recursive: true, force: true });
});

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
  const delivered = readdirSync(join(base, 'out', 'files')).sort();
  expect(delivered).toEqual(Array.from({ length: stopped.lastCommitted }, (_, i) => `batch-${i + 1}.jsonl`).sort());
  expect(stopped.lastCommitted).toBeLessThan(6);

  rmSync(filler);
  const again = run(['run', job, '--checkpoint', checkpoint, '--once']);
  expect(again.status).toBe(0);
  const seen = new Map<string, number>();
  for (const f of readdirSync(join(base, 'out', 'files'))) {
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
