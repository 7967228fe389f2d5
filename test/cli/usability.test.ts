// The command line a person expects (issue 16): --help on every command, a suggestion for
// a mistyped flag, counts with the right plural, durations rounded, no terminal control
// codes off a terminal, and long output that reaches a pipe whole.
import { join } from 'node:path';
import { generatorJob, report, tidemark, write, type Result } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-usability-');
let n = 0;
function setup(options: Parameters<typeof generatorJob>[1] = {}): { dir: string; job: string; cp: string } {
  const dir = join(root, `t${++n}`);
  return { dir, job: write(join(dir, 'job.ts'), generatorJob(dir, options)), cp: join(dir, 'cp') };
}

/** Exit 2 and exactly this one line on stderr. */
function usageError(r: Result, line: string): void {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `tidemark: ${line}\n` });
}

describe('the command line a person expects', () => {
  it('--help and -h on every command and log subcommand print that usage and exit 0', async () => {
    const cases: Array<[string[], string]> = [
      [['run'], 'tidemark run <job.ts|job.js> [options]'],
      [['inspect'], 'tidemark inspect <checkpoint-dir>'],
      [['reset'], 'tidemark reset <checkpoint-dir> --to TARGET'],
      [['log'], 'tidemark log create <dir>'],
      [['log', 'create'], 'tidemark log create <dir>'],
      [['log', 'append'], 'tidemark log append <dir>'],
      [['log', 'tail'], 'tidemark log tail <dir>'],
    ];
    for (const [command, usage] of cases) {
      for (const flag of ['--help', '-h']) {
        const r = await tidemark([...command, flag]);
        expect({ command: [...command, flag], code: r.code, stderr: r.stderr, first: r.stdout.split('\n')[0] })
          .toEqual({ command: [...command, flag], code: 0, stderr: '', first: expect.stringContaining(usage) });
      }
    }
    // A subcommand's help is its own, not the whole log's.
    expect((await tidemark(['log', 'append', '--help'])).stdout).not.toContain('tidemark log tail');
  });

  it('an unknown flag names the command and the nearest known flag, with balanced quotes', async () => {
    usageError(await tidemark(['run', 'job.ts', '--onse']), "Unknown option '--onse' for tidemark run: did you mean --once? (tidemark run --help lists them)");
    usageError(await tidemark(['run', 'job.ts', '--metrics', '9464']),
      "Unknown option '--metrics' for tidemark run: did you mean --metrics-port or --metrics-host? (tidemark run --help lists them)");
    usageError(await tidemark(['inspect', 'cp', '--jsno']), "Unknown option '--jsno' for tidemark inspect: did you mean --json? (tidemark inspect --help lists them)");
    usageError(await tidemark(['log', 'append', 'dir', '--partitions', '2']),
      "Unknown option '--partitions' for tidemark log append: did you mean --partition? (tidemark log append --help lists them)");
    usageError(await tidemark(['reset', 'cp', '--frobnicate']), "Unknown option '--frobnicate' for tidemark reset (tidemark reset --help lists them).");
  });

  it('counts take the right plural: 1 partition, 1 record, 1 batch', async () => {
    const dir = join(root, `log${++n}`);
    expect(await tidemark(['log', 'create', dir, '--partitions', '1'])).toMatchObject({ code: 0, stdout: `embedded log ${dir}: topic events, 1 partition\n` });
    expect(await tidemark(['log', 'append', dir, 'one'])).toMatchObject({ code: 0, stdout: 'appended 1 record to events\n' });
    expect(await tidemark(['log', 'append', dir, 'two', 'three'])).toMatchObject({ code: 0, stdout: 'appended 2 records to events\n' });

    const { job, cp } = setup({ partitions: 1, size: 1 });
    const run = await tidemark(['run', job, '--checkpoint', cp, '--once']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('"msg":"stopped after 1 batch, 1 record"');
    const text = await tidemark(['inspect', cp]);
    expect(text.stdout).toContain('last 1 committed batch:');
    expect(text.stdout).toMatch(/ {2}1 record → outputs 1, dead-letters 0 {2}/);
  });

  it('inspect rounds durations for people; --json keeps the exact milliseconds', async () => {
    const { job, cp } = setup({ partitions: 2, size: 60, maxRecordsPerPartition: 20 });
    expect((await tidemark(['run', job, '--checkpoint', cp, '--once', '--log-level', 'warn'])).code).toBe(0);
    const r = report(await tidemark(['inspect', cp, '--json']));
    const durations = r.recentBatches.map((b) => b.durations ?? {});
    expect(durations.length).toBe(3);
    // Phase durations are measured with performance.now(): fractions that people should not see.
    expect(durations.flatMap((d) => Object.values(d)).some((ms) => !Number.isInteger(ms * 10))).toBe(true);
    const text = (await tidemark(['inspect', cp])).stdout;
    const lines = text.split('\n').filter((l) => / records → /.test(l));
    expect(lines.length).toBe(3);
    for (const line of lines) {
      const shown = / {2}(\S+ m?s \(plan [^)]*\)) {2}/.exec(line)?.[1];
      expect(shown).toMatch(/^\d+(\.\d)? (ms|s) \(plan \d+(\.\d)? (ms|s), read \d+(\.\d)? (ms|s), /);
      expect(shown).not.toMatch(/\d\.\d\d/);
    }
  });

  it('--progress always off a terminal prints plain lines, without control codes', async () => {
    const { job, cp } = setup({ partitions: 1, size: 40, maxRecordsPerPartition: 10 });
    const r = await tidemark(['run', job, '--checkpoint', cp, '--once', '--progress', 'always', '--log-level', 'warn']);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('\r');
    expect(r.stderr).not.toContain('\x1b');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThanOrEqual(1);
    for (const line of lines) expect(line).toMatch(/^batch \d+ · [\d,]+ records\/s · [\d,]+ records? · lag /);
    expect(lines.at(-1)).toMatch(/^batch 4 · .* · 40 records · /);
  });

  it('inspect --json longer than a pipe buffer (64 KiB) arrives whole and parses', async () => {
    // 1000 partitions × 2 batches of ranges, pretty-printed: several pipe buffers.
    const { job, cp } = setup({ partitions: 1000, size: 2, maxRecordsPerPartition: 1 });
    expect((await tidemark(['run', job, '--checkpoint', cp, '--once', '--log-level', 'warn'])).code).toBe(0);
    const json = await tidemark(['inspect', cp, '--json', '--last', '2']);
    expect(json.code).toBe(0);
    expect(json.stdout.length).toBeGreaterThan(2 * 64 * 1024);
    const r = report(json);
    expect(Object.keys(r.positions ?? {}).length).toBe(1000);
    expect(r.recentBatches.flatMap((b) => b.ranges).length).toBe(2000);
  });
});
