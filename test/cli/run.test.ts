// `tidemark run`: every flag and its environment variable, signals, progress; the real
// binary as a child process.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { allOutputs, batchFiles, generatorJob, offsets, onTerminal, report, start, tidemark, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-run-');
let n = 0;
/** A fresh directory with a generator job in it. */
function setup(options: Parameters<typeof generatorJob>[1] = {}): { dir: string; job: string; cp: string } {
  const dir = join(root, `t${++n}`);
  const job = write(join(dir, 'job.ts'), generatorJob(dir, options));
  return { dir, job, cp: join(dir, 'cp') };
}

describe('tidemark run', () => {
  it('--help explains every flag, its variable, and the exit codes', async () => {
    const r = await tidemark(['run', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--checkpoint', '--once', '--ranges', '--max-batches', '--metrics-port', '--accept-code-change', '--log-level', '--progress']) {
      expect(r.stdout).toContain(flag);
      expect(r.stdout).toContain(`TIDEMARK_${flag.slice(2).toUpperCase().replace(/-/g, '_')}`);
    }
    const all = await tidemark(['--help']);
    expect(all.code).toBe(0);
    for (const text of ['tidemark inspect', 'tidemark reset', '--discard-in-flight', 'Exit codes', '130']) expect(all.stdout).toContain(text);
    for (const code of ['2 ', '3 ', '4 ', '5 ', '6 ', '7 ']) expect(all.stdout).toMatch(new RegExp(`\\n  ${code}`));
    const none = await tidemark([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toContain('Usage:');
  });

  it('--once processes what is there, every offset exactly once, logging each batch as JSON; --progress draws lag per topic', async () => {
    const { dir, job, cp } = setup({ partitions: 2, size: 100, maxRecordsPerPartition: 30 });
    const r = await tidemark(['run', job, '--checkpoint', cp, '--once', '--progress', 'always']);
    expect(r.code).toBe(0);
    expect(allOutputs(dir).sort()).toEqual(offsets(2, 0, 100).sort());
    expect([...batchFiles(dir).keys()]).toEqual([1, 2, 3, 4]);
    const logs = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const batches = logs.filter((l) => /^batch \d+ committed$/.test(String(l.msg)));
    expect(batches).toHaveLength(4);
    expect(batches[0]).toMatchObject({ batch: 1, records: 60, outputs: 60, ranges: [{ topic: 'generated', partition: 0, from: 0, until: 30 }, { topic: 'generated', partition: 1, from: 0, until: 30 }] });
    expect(Object.keys(batches[0]!.durations as object)).toEqual(expect.arrayContaining(['plan', 'read', 'transform', 'stage', 'deliver']));
    expect(r.stderr).toMatch(/batch 4 · [\d,]+ records\/s · 200 records · lag generated 0/);
    const inspect = report(await tidemark(['inspect', cp, '--json']));
    expect(inspect.positions).toEqual({ 'generated/0': 100, 'generated/1': 100 });
  });

  it('shows the progress line by itself on a terminal, and not when stderr is not one', async () => {
    const { dir, job, cp } = setup({ partitions: 1, size: 40, maxRecordsPerPartition: 10 });
    const r = await onTerminal(['run', job, '--checkpoint', cp, '--once', '--log-level', 'warn'], '');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/batch 4 · [\d,]+ records\/s · 40 records · lag generated 0/);
    expect(allOutputs(dir)).toEqual(offsets(1, 0, 40));
    // Another checkpoint needs its own sink directory (the file sink refuses a second owner): another setup.
    const second = setup({ partitions: 1, size: 40, maxRecordsPerPartition: 10 });
    const piped = await tidemark(['run', second.job, '--checkpoint', second.cp, '--once', '--log-level', 'warn']);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
  });

  it('--max-batches stops after N batches; --log-level warn keeps info lines out', async () => {
    const { dir, job, cp } = setup({ partitions: 1, size: 100, maxRecordsPerPartition: 10 });
    const r = await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '3', '--log-level', 'warn']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(allOutputs(dir)).toEqual(offsets(1, 0, 30));
    expect(report(await tidemark(['inspect', cp, '--json'])).lastCommitted).toBe(3);
  });

  it('takes every setting from TIDEMARK_* variables, flags winning', async () => {
    const { dir, job, cp } = setup({ partitions: 1, size: 50, maxRecordsPerPartition: 10 });
    const r = await tidemark(['run'], {
      env: { TIDEMARK_JOB: job, TIDEMARK_CHECKPOINT: cp, TIDEMARK_ONCE: 'true', TIDEMARK_MAX_BATCHES: '2', TIDEMARK_LOG_LEVEL: 'warn', TIDEMARK_PROGRESS: 'never' },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('');
    expect(allOutputs(dir)).toEqual(offsets(1, 0, 20));
    // The flag wins over the variable.
    const again = await tidemark(['run', '--max-batches', '1'], { env: { TIDEMARK_JOB: job, TIDEMARK_CHECKPOINT: cp, TIDEMARK_MAX_BATCHES: '5', TIDEMARK_LOG_LEVEL: 'warn' } });
    expect(again.code).toBe(0);
    expect(allOutputs(dir)).toEqual(offsets(1, 0, 30));
    // TIDEMARK_ONCE=1 ends once the log is drained.
    const rest = await tidemark(['run', job], { env: { TIDEMARK_CHECKPOINT: cp, TIDEMARK_ONCE: '1', TIDEMARK_LOG_LEVEL: 'warn' } });
    expect(rest.code).toBe(0);
    expect(allOutputs(dir)).toEqual(offsets(1, 0, 50));
  });

  it('rejects a malformed variable or flag value, naming it', async () => {
    const { job, cp } = setup();
    const bad = await tidemark(['run', job, '--checkpoint', cp], { env: { TIDEMARK_MAX_BATCHES: 'lots' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('TIDEMARK_MAX_BATCHES must be a whole number');
    const once = await tidemark(['run', job, '--checkpoint', cp], { env: { TIDEMARK_ONCE: 'maybe' } });
    expect(once.code).toBe(2);
    expect(once.stderr).toContain('TIDEMARK_ONCE must be 1, true, yes, 0, false or no');
    const level = await tidemark(['run', job, '--checkpoint', cp, '--log-level', 'loud']);
    expect(level.code).toBe(2);
    expect(level.stderr).toContain('--log-level must be one of debug, info, warn, error, silent');
    expect(existsSync(cp)).toBe(false);
  });

  describe('--ranges FILE', () => {
    it('processes exactly the given ranges, and running it again after it finished does nothing', async () => {
      const { dir, job, cp } = setup({ partitions: 3, size: 100, maxRecordsPerPartition: 15 });
      const ranges = write(join(dir, 'ranges.json'), JSON.stringify([
        { topic: 'generated', partition: 0, from: 10, until: 50 },
        { topic: 'generated', partition: 2, from: 90, until: 95 },
      ]));
      const r = await tidemark(['run', job, '--checkpoint', cp, '--ranges', ranges, '--log-level', 'warn']);
      expect(r.code).toBe(0);
      const expected = [...offsets(1, 10, 50), ...['2:90', '2:91', '2:92', '2:93', '2:94']];
      expect(allOutputs(dir).sort()).toEqual(expected.sort());
      // Split by the job's limits: 15 records per partition per batch.
      expect(batchFiles(dir).get(1)).toEqual([...offsets(1, 10, 25), '2:90', '2:91', '2:92', '2:93', '2:94']);
      expect(report(await tidemark(['inspect', cp, '--json'])).positions).toEqual({ 'generated/0': 50, 'generated/2': 95 });
      const again = await tidemark(['run', job, '--checkpoint', cp, '--ranges', ranges]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('stopped after 0 batches');
      expect(allOutputs(dir).sort()).toEqual(expected.sort());
    });

    it('after a crash, the same ranges again finish the rest exactly once (TIDEMARK_RANGES)', async () => {
      const { dir, job, cp } = setup({ partitions: 1, size: 100, maxRecordsPerPartition: 10 });
      const ranges = write(join(dir, 'ranges.json'), JSON.stringify([{ topic: 'generated', partition: 0, from: 0, until: 45 }]));
      const crashed = await tidemark(['run', job, '--checkpoint', cp, '--log-level', 'warn'], { env: { TIDEMARK_RANGES: ranges, TIDEMARK_CRASH_AT: 'staged:3' } });
      expect(crashed.signal).toBe('SIGKILL');
      const r = await tidemark(['run', job, '--checkpoint', cp, '--log-level', 'warn'], { env: { TIDEMARK_RANGES: ranges } });
      expect(r.code).toBe(0);
      expect(allOutputs(dir)).toEqual(offsets(1, 0, 45));
    });

    it('refuses a range that would leave a gap, a malformed file, and a range past the source', async () => {
      const { dir, job, cp } = setup({ partitions: 1, size: 100 });
      const first = write(join(dir, 'a.json'), JSON.stringify([{ topic: 'generated', partition: 0, from: 0, until: 20 }]));
      expect((await tidemark(['run', job, '--checkpoint', cp, '--ranges', first, '--log-level', 'warn'])).code).toBe(0);
      const gap = write(join(dir, 'gap.json'), JSON.stringify([{ topic: 'generated', partition: 0, from: 30, until: 40 }]));
      const r = await tidemark(['run', job, '--checkpoint', cp, '--ranges', gap]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('starts after the checkpoint\'s position 20: offsets [20, 30) would be skipped');
      const notJson = write(join(dir, 'bad.json'), '{ nope');
      const bad = await tidemark(['run', job, '--checkpoint', cp, '--ranges', notJson]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('is not JSON');
      const field = write(join(dir, 'field.json'), JSON.stringify([{ topic: 'generated', partition: 0, from: 'x', until: 40 }]));
      const wrong = await tidemark(['run', job, '--checkpoint', cp, '--ranges', field]);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toContain('needs `from` (a whole number ≥ 0)');
      const past = write(join(dir, 'past.json'), JSON.stringify([{ topic: 'generated', partition: 0, from: 20, until: 500 }]));
      const beyond = await tidemark(['run', job, '--checkpoint', cp, '--ranges', past]);
      expect(beyond.code).toBe(2);
      expect(beyond.stderr).toContain('ends beyond the source, which ends at offset 100');
      expect(allOutputs(dir)).toEqual(offsets(1, 0, 20));
    });

    it('a range below the log start is data loss: exit 5 under onDataLoss fail', async () => {
      const { dir, job, cp } = setup({ partitions: 1, size: 100, earliest: 40 });
      const ranges = write(join(dir, 'ranges.json'), JSON.stringify([{ topic: 'generated', partition: 0, from: 10, until: 60 }]));
      const r = await tidemark(['run', job, '--checkpoint', cp, '--ranges', ranges]);
      expect(r.code).toBe(5);
      expect(r.stderr).toContain('generated/0 [10, 40)');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(allOutputs(dir)).toEqual([]);
    });
  });

  describe('signals', () => {
    it('SIGTERM finishes the batch in flight, commits it and exits 0', async () => {
      const { dir, job, cp } = setup({ partitions: 1, size: 100, maxRecordsPerPartition: 10, gateFrom: 2 });
      const daemon = start(['run', job, '--checkpoint', cp]);
      await daemon.waitFor(() => existsSync(join(dir, 'entered-2')), 'batch 2 reaches the transform');
      daemon.kill('SIGTERM');
      await daemon.waitForLog(/^SIGTERM: finishing the batch in flight/);
      write(join(dir, 'gate'), '');
      const r = await daemon.exited;
      expect(r.code).toBe(0);
      expect(allOutputs(dir)).toEqual(offsets(1, 0, 20));
      const inspect = report(await tidemark(['inspect', cp, '--json']));
      expect(inspect.lastCommitted).toBe(2);
      expect(inspect.inFlight).toBeNull();
    });

    it('a second signal exits at once with 130; the batch in flight is recovered on restart', async () => {
      // maxInFlight 1: batch 1 is committed when batch 2 enters the transform (pipelined, it may still be delivered).
      const { dir, job, cp } = setup({ partitions: 1, size: 30, maxRecordsPerPartition: 10, gateFrom: 2, maxInFlight: 1 });
      const daemon = start(['run', job, '--checkpoint', cp]);
      await daemon.waitFor(() => existsSync(join(dir, 'entered-2')), 'batch 2 reaches the transform');
      daemon.kill('SIGINT');
      await daemon.waitForLog(/^SIGINT: finishing the batch in flight/);
      daemon.kill('SIGINT');
      const r = await daemon.exited;
      expect(r.code).toBe(130);
      expect(r.stderr).toContain('second SIGINT: exiting now');
      const inspect = report(await tidemark(['inspect', cp, '--json']));
      expect(inspect.inFlight).toMatchObject({ id: 2, state: 'planned', ranges: [{ topic: 'generated', partition: 0, from: 10, until: 20 }] });
      write(join(dir, 'gate'), '');
      const again = await tidemark(['run', job, '--checkpoint', cp, '--once']);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('recovering batch 2 (planned)');
      expect(allOutputs(dir)).toEqual(offsets(1, 0, 30));
    });
  });
});
