// Damage and bad input, on the real binary: run, inspect and reset agree on what is damaged
// (one check, checkpoint/damage.ts), the way on they name works, and bad paths and
// positions end with their own exit codes (issue 13, items 6 and 7).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { allOutputs, batchFiles, generatorJob, offsets, report, tidemark, write, type Result } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-damage-');
let n = 0;
const quiet = ['--log-level', 'warn'];

function expectFailure(r: Result, code: number, message: string | RegExp): void {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code, stderr: expect.stringMatching(typeof message === 'string' ? new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : message) });
  expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
}

/** A generator job (1 partition of 1,000, 5 records a batch) with its checkpoint in `<dir>/cp`. */
function setUp(): { dir: string; job: string; cp: string } {
  const dir = join(root, `t${++n}`);
  const job = write(join(dir, 'job.ts'), generatorJob(dir, { partitions: 1, size: 1000, maxRecordsPerPartition: 5 }));
  return { dir, job, cp: join(dir, 'cp') };
}

/** run, inspect and reset on one checkpoint: their exit codes and messages. */
async function allThree(job: string, cp: string, dir: string): Promise<{ run: Result; inspect: Result; reset: Result }> {
  const offsetsFile = write(join(dir, 'offsets.json'), JSON.stringify({ 'generated/0': 0 }));
  return {
    run: await tidemark(['run', job, '--checkpoint', cp, '--once', ...quiet]),
    inspect: await tidemark(['inspect', cp]),
    reset: await tidemark(['reset', cp, '--to', offsetsFile, '--yes']),
  };
}

describe('run, inspect and reset agree on damage', () => {
  it('garbage in a table file that recovery does not read: all three exit 7, and run delivers nothing', async () => {
    const { dir, job, cp } = setUp();
    // The second run's 40 batch records move into one table file of several blocks when the third opens the database.
    for (const batches of ['1', '40', '1']) expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', batches, ...quiet])).code).toBe(0);
    const tables = readdirSync(join(cp, 'db')).filter((f) => f.endsWith('.ldb')).sort();
    expect(tables.length).toBeGreaterThanOrEqual(2);
    const table = join(cp, 'db', tables[tables.length - 1]!);
    const bytes = readFileSync(table);
    bytes.fill(0x5a, 50, 350); // the first data block: old batch records, not the meta or the state
    writeFileSync(table, bytes);
    const delivered = batchFiles(dir).size;

    const { run, inspect, reset } = await allThree(job, cp, dir);
    expect(inspect.code).toBe(7);
    expect(inspect.stdout).toMatch(/DAMAGED[\s\S]*batches: reading batch!… failed: Corruption/);
    // run and reset check the tables' block checksums before LevelDB opens them (checkpoint/tables.ts).
    const named = new RegExp(`is damaged \\(LevelDB cannot open it: table files fail their block checksums: ${basename(table)}: block at 0 \\(`);
    expectFailure(run, 7, named);
    expectFailure(reset, 7, named);
    expect(batchFiles(dir).size).toBe(delivered);
  });

  it('db/ deleted from a checkpoint that was written: all three say damaged (exit 7), none says "no checkpoint"', async () => {
    const { dir, job, cp } = setUp();
    expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '2', ...quiet])).code).toBe(0);
    rmSync(join(cp, 'db'), { recursive: true });

    const { run, inspect, reset } = await allThree(job, cp, dir);
    expect(inspect.code).toBe(7);
    expect(inspect.stdout).toContain(`leveldb: its LevelDB directory ${join(cp, 'db')} is missing, but checkpoint.json says a checkpoint was written here`);
    for (const r of [run, reset]) expectFailure(r, 7, `Checkpoint ${cp} is damaged (its LevelDB directory ${join(cp, 'db')} is missing`);
    expect(existsSync(join(cp, 'db'))).toBe(false); // nothing started afresh
  });

  it('the way on that the message names works: a new checkpoint started by reset at given positions, then run on', async () => {
    const { dir, job, cp } = setUp();
    expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '3', ...quiet])).code).toBe(0);
    const db = join(cp, 'db');
    for (const f of readdirSync(db)) if (f.endsWith('.ldb')) rmSync(join(db, f)); // a truncated copy
    writeFileSync(join(db, 'CURRENT'), 'garbage\n');

    const damaged = await tidemark(['run', job, '--checkpoint', cp, '--once', ...quiet]);
    expect(damaged.code).toBe(7);
    expect(damaged.stderr).not.toContain('repair it deliberately');
    expect(damaged.stderr).toContain('`tidemark reset <new dir> --to offsets.json --job <job.ts> --yes`');

    // Positions known from elsewhere (the sink's last batch file ends at offset 14); the file sink gets a new directory.
    const job2 = write(join(dir, 'job2.ts'), generatorJob(join(dir, 'again'), { partitions: 1, size: 1000, maxRecordsPerPartition: 5 }));
    const fresh = join(dir, 'cp-new');
    const reset = await tidemark(['reset', fresh, '--to', write(join(dir, 'offsets.json'), '{"generated/0": 15}'), '--job', job2, '--yes']);
    expect(reset.code).toBe(0);
    expect(reset.stdout).toMatch(/generated\/0\s+-\s+15\s+\(new\)/);
    expect((await tidemark(['run', job2, '--checkpoint', fresh, '--once', ...quiet])).code).toBe(0);
    expect(allOutputs(join(dir, 'again'))).toEqual(offsets(1, 15, 1000));
    const r = report(await tidemark(['inspect', fresh, '--json']));
    expect(r.fingerprints.map((f) => f.note)).toEqual(['created by tidemark reset']);
  });
});

describe('bad input ends with its own exit code', () => {
  it('a read-only checkpoint directory: exit 12 with the reason', async () => {
    const { job, cp } = setUp();
    mkdirSync(cp, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', cp]);
    try {
      expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '1', ...quiet])).code).toBe(0);
      execFileSync('mount', ['-o', 'remount,ro', cp]);
      const r = await tidemark(['run', job, '--checkpoint', cp, '--once', ...quiet]);
      expectFailure(r, 12, `Could not write checkpoint ${cp}: EROFS: read-only file system`);
      expect(r.stderr).toContain('make the directory writable');
    } finally {
      spawnSync('umount', [cp]);
    }
  });

  it('a checkpoint path that is a file: exit 2 naming the path, for run, inspect and reset', async () => {
    const { dir, job } = setUp();
    const file = write(join(dir, 'not-a-dir'), 'x');
    const { run, inspect, reset } = await allThree(job, file, dir);
    for (const r of [run, inspect, reset]) expectFailure(r, 2, `The checkpoint path ${file} is a file, not a directory`);
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('reset --to offsets.json refuses a partition the checkpoint does not know, unless --allow-new-partitions', async () => {
    const { dir, job, cp } = setUp();
    expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '2', ...quiet])).code).toBe(0);
    const file = write(join(dir, 'offsets.json'), '{"nosuch/0": 3}');
    const refused = await tidemark(['reset', cp, '--to', file, '--yes']);
    expectFailure(refused, 2, `--to file ${file}: nosuch/0 is not a partition of the checkpoint (it knows generated/0). Nothing was changed.`);
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 10 });
    // With the job, its source is asked too: still unknown.
    expectFailure(await tidemark(['reset', cp, '--to', file, '--job', job, '--yes']), 2, "nosuch/0 is not a partition of the checkpoint nor of the job's source");
    expect((await tidemark(['reset', cp, '--to', file, '--allow-new-partitions', '--yes'])).code).toBe(0);
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 10, 'nosuch/0': 3 });
  });

  it('reset --to offsets.json without --job says the ends were not checked; with --job, offsets past the end are refused', async () => {
    const { dir, job, cp } = setUp();
    expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '2', ...quiet])).code).toBe(0);
    const file = write(join(dir, 'offsets.json'), '{"generated/0": 5000}');
    const withJob = await tidemark(['reset', cp, '--to', file, '--job', job, '--yes']);
    expectFailure(withJob, 2, "generated/0 5000 is beyond the source's end 1000");
    const asked = await tidemark(['reset', cp, '--to', file]);
    expect(asked.stdout).toContain('not checked against the source');
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 10 });
  });

  it('reset with a file of offsets never runs job code from TIDEMARK_JOB', async () => {
    const { dir, job, cp } = setUp();
    expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '2', ...quiet])).code).toBe(0);
    const trap = write(join(dir, 'trap.ts'), generatorJob(dir, { prelude: `writeFileSync(join(dir, 'job-code-ran'), '');` }));
    const r = await tidemark(['reset', cp, '--to', write(join(dir, 'offsets.json'), '{"generated/0": 5}'), '--yes'], { env: { TIDEMARK_JOB: trap } });
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, 'job-code-ran'))).toBe(false);
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 5 });
  });

  it('a file sink directory another checkpoint filled is refused (exit 4), its batch files untouched', async () => {
    const { dir, job, cp } = setUp();
    expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '2', ...quiet])).code).toBe(0);
    const before = batchFiles(dir);
    expect([...before.keys()]).toEqual([1, 2]);
    const other = join(dir, 'cp-other');
    const r = await tidemark(['run', job, '--checkpoint', other, '--once', ...quiet]);
    expectFailure(r, 4, /Sink files cannot take batch 1: its directory .* belongs to another checkpoint/);
    expect(batchFiles(dir)).toEqual(before);
    // The owner goes on writing there.
    expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '1', ...quiet])).code).toBe(0);
    expect([...batchFiles(dir).keys()]).toEqual([1, 2, 3]);
  });
});
