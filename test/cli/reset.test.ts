// `tidemark reset`: the deliberate repair, in each mode.
import { join } from 'node:path';
import { allOutputs, batchFiles, generatorJob, offsets, onTerminal, report, tidemark, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-reset-');
let n = 0;
const quiet = ['--log-level', 'warn'];

/** A generator job (2 partitions, offsets [10, 100): the first 10 are "deleted by retention") that has run through offset 60. */
async function ranUntil60(): Promise<{ dir: string; job: string; cp: string }> {
  const dir = join(root, `t${++n}`);
  const job = write(join(dir, 'job.ts'), generatorJob(dir, { partitions: 2, size: 100, earliest: 10, maxRecordsPerPartition: 25 }));
  const cp = join(dir, 'cp');
  expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '2', ...quiet])).code).toBe(0);
  expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 60, 'generated/1': 60 });
  return { dir, job, cp };
}

describe('tidemark reset', () => {
  it('--to offsets.json (no job needed): prints before and after, records the reset; the next run starts there', async () => {
    const { dir, job, cp } = await ranUntil60();
    const file = write(join(dir, 'offsets.json'), JSON.stringify({ 'generated/0': 40 }));
    const r = await tidemark(['reset', cp, '--to', file, '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/generated\/0\s+60\s+40\s+\(back 20: processed again\)/);
    expect(r.stdout).toMatch(/generated\/1\s+60\s+60\s+\(unchanged\)/);
    expect(r.stdout).toContain('done: positions reset');
    const after = report(await tidemark(['inspect', cp, '--json']));
    expect(after.positions).toEqual({ 'generated/0': 40, 'generated/1': 60 });
    expect(after.resets).toEqual([{
      at: expect.any(Number), to: `file ${file}`, before: { 'generated/0': 60 }, after: { 'generated/0': 40 },
    }]);
    expect((await tidemark(['inspect', cp])).stdout).toContain(`to file ${file}: generated/0 60 → 40`);
    expect((await tidemark(['run', job, '--checkpoint', cp, '--once', ...quiet])).code).toBe(0);
    expect(batchFiles(dir).get(3)!.slice(0, 2)).toEqual(['0:40', '0:41']);
    // The array form works too.
    const array = write(join(dir, 'array.json'), JSON.stringify([{ topic: 'generated', partition: 1, offset: 95 }]));
    expect((await tidemark(['reset', cp, '--to', array, '--yes'])).code).toBe(0);
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 100, 'generated/1': 95 });
  });

  it('--to earliest, latest and timestamp:<ms> look offsets up through the job\'s source', async () => {
    const { job, cp } = await ranUntil60();
    const earliest = await tidemark(['reset', cp, '--job', job, '--to', 'earliest', '--yes']);
    expect(earliest.code).toBe(0);
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 10, 'generated/1': 10 });
    expect((await tidemark(['reset', cp, '--job', job, '--to', 'latest', '--yes'])).code).toBe(0);
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 100, 'generated/1': 100 });
    // The generator stamps offset o with 1_700_000_000_000 + o.
    const ts = await tidemark(['reset', cp, '--to', 'timestamp:1700000000042', '--yes'], { env: { TIDEMARK_JOB: job } });
    expect(ts.code).toBe(0);
    expect(ts.stdout).toMatch(/generated\/0\s+100\s+42\s+\(back 58/);
    const r = report(await tidemark(['inspect', cp, '--json']));
    expect(r.positions).toEqual({ 'generated/0': 42, 'generated/1': 42 });
    expect(r.resets.map((x) => x.to)).toEqual(['earliest', 'latest', 'timestamp:1700000000042']);
    const iso = await tidemark(['reset', cp, '--job', job, '--to', 'timestamp:2023-11-14T22:13:20.070Z', '--yes']);
    expect(iso.code).toBe(0);
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 70, 'generated/1': 70 });
  });

  it('refuses without --yes (no terminal to ask), without --job where it needs the source, beyond the source\'s end: nothing changes', async () => {
    const { dir, job, cp } = await ranUntil60();
    const file = write(join(dir, 'offsets.json'), JSON.stringify({ 'generated/0': 0 }));
    const r = await tidemark(['reset', cp, '--to', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/generated\/0\s+60\s+0/);
    expect(r.stderr).toContain('pass --yes to confirm');
    const noJob = await tidemark(['reset', cp, '--to', 'earliest', '--yes']);
    expect(noJob.code).toBe(2);
    expect(noJob.stderr).toContain('--to earliest looks offsets up in the job\'s source: add --job');
    const badFile = await tidemark(['reset', cp, '--to', write(join(dir, 'bad.json'), '{"generated/x": 1}'), '--yes']);
    expect(badFile.code).toBe(2);
    expect(badFile.stderr).toContain('must be "<topic>/<partition>"');
    const other = write(join(dir, 'other.ts'), generatorJob(dir, { name: 'other' }));
    const wrongJob = await tidemark(['reset', cp, '--job', other, '--to', 'latest', '--yes']);
    expect(wrongJob.code).toBe(4);
    expect(wrongJob.stderr).toContain('belongs to another job');
    const beyond = await tidemark(['reset', cp, '--job', job, '--to', write(join(dir, 'beyond.json'), JSON.stringify({ 'generated/0': 150 })), '--yes']);
    expect(beyond.code).toBe(2);
    expect(beyond.stderr).toContain("generated/0 150 is beyond the source's end 100");
    const r2 = report(await tidemark(['inspect', cp, '--json']));
    expect(r2.positions).toEqual({ 'generated/0': 60, 'generated/1': 60 });
    expect(r2.resets).toEqual([]);
  });

  it('on a terminal, asks before applying', async () => {
    const { dir, cp } = await ranUntil60();
    const file = write(join(dir, 'offsets.json'), JSON.stringify({ 'generated/1': 30 }));
    const no = await onTerminal(['reset', cp, '--to', file], 'n\n');
    expect(no.code).toBe(0);
    expect(no.stdout).toContain('Apply this reset? [y/N]');
    expect(no.stdout).toContain('not applied: nothing was changed.');
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 60, 'generated/1': 60 });
    const yes = await onTerminal(['reset', cp, '--to', file], 'y\n');
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain('done: positions reset');
    expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 60, 'generated/1': 30 });
  });

  it('discards the batch in flight only when told to, saying what it discarded', async () => {
    const { dir, job, cp } = await ranUntil60();
    expect((await tidemark(['run', job, '--checkpoint', cp, ...quiet], { env: { TIDEMARK_CRASH_AT: 'staged:1' } })).signal).toBe('SIGKILL');
    const file = write(join(dir, 'offsets.json'), JSON.stringify({ 'generated/0': 90, 'generated/1': 90 }));
    const refused = await tidemark(['reset', cp, '--to', file, '--yes']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('Batch 3 is in flight (staged, ranges generated/0 [60, 85), generated/1 [60, 85))');
    expect(refused.stderr).toContain('--discard-in-flight');
    const r = await tidemark(['reset', cp, '--to', file, '--discard-in-flight', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('discarding batch 3 (staged, ranges generated/0 [60, 85), generated/1 [60, 85); counted outputs: outputs 50, dead-letters 0)');
    expect(r.stdout).toContain('a sink may already hold its outputs under batch id 3');
    const after = report(await tidemark(['inspect', cp, '--json']));
    expect(after).toMatchObject({ inFlight: null, lastCommitted: 3, positions: { 'generated/0': 90, 'generated/1': 90 } });
    expect(after.resets[0]).toMatchObject({ discarded: 3 });
    expect(after.recentBatches[0]).toMatchObject({ id: 3, discarded: true, discardedBy: 'reset' });
    expect((await tidemark(['run', job, '--checkpoint', cp, '--once', ...quiet])).code).toBe(0);
    expect([...batchFiles(dir).keys()]).toEqual([1, 2, 4]);
    expect(allOutputs(dir).sort()).toEqual([...offsets(2, 10, 60), ...offsets(2, 90, 100)].sort());
  });
});
