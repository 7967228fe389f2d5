// Errors for people: every expected failure prints one clear message and exits with its
// own code, without a stack trace unless --log-level debug asks for it.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allOutputs, generatorJob, offsets, report, start, tidemark, write, type Result } from '../support/cli';
import { EmbeddedLog } from 'tidemark';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-errors-');
let n = 0;
const fresh = (): string => join(root, `t${++n}`);

const STACK = /\n\s+at .+:\d+:\d+/;

/** One line on stderr, the given code, no stack trace. */
function expectFailure(r: Result, code: number, message: string | RegExp): void {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code, stderr: expect.stringMatching(typeof message === 'string' ? new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : message) });
  expect(r.stderr).toMatch(/^tidemark: /);
  expect(r.stderr).not.toMatch(STACK);
}

/** The checkpoint's data files and their contents, to show nothing was touched (LOG and LOG.old are LevelDB's own diagnostics). */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) if (!/^LOG(\.old)?$/.test(name)) files[name] = readFileSync(join(dir, name)).toString('base64');
  return files;
}

describe('errors for people', () => {
  it('a job file that does not exist: exit 2, and --log-level debug shows the stack', async () => {
    const r = await tidemark(['run', join(root, 'nope.ts'), '--checkpoint', join(root, 'cp')]);
    expectFailure(r, 2, `Job file ${join(root, 'nope.ts')} does not exist.`);
    const debug = await tidemark(['run', join(root, 'nope.ts'), '--checkpoint', join(root, 'cp'), '--log-level', 'debug']);
    expect(debug.code).toBe(2);
    expect(debug.stderr).toMatch(STACK);
  });

  it('a job file that does not export a job, does not build, or throws while loading: exit 2', async () => {
    const dir = fresh();
    const noExport = write(join(dir, 'a.ts'), 'export const x = 1;\n');
    expectFailure(await tidemark(['run', noExport, '--checkpoint', join(dir, 'cp')]), 2, 'does not export a job: write `export default defineJob({ ... })`');
    const broken = write(join(dir, 'b.ts'), 'export default defineJob({ name: \n');
    expectFailure(await tidemark(['run', broken, '--checkpoint', join(dir, 'cp')]), 2, /Job file .*b\.ts does not build: .*b\.ts:\d+: /);
    const throws = write(join(dir, 'c.ts'), generatorJob(dir, { prelude: "throw new Error('no config for this environment');" }));
    expectFailure(await tidemark(['run', throws, '--checkpoint', join(dir, 'cp')]), 2, 'failed while loading: no config for this environment');
    expect(existsSync(join(dir, 'cp'))).toBe(false);
  });

  it('a job field of the wrong type is named', async () => {
    const dir = fresh();
    const job = write(join(dir, 'job.ts'), generatorJob(dir).replace('maxRecordsPerPartition: 30', "maxRecordsPerPartition: 'thirty'"));
    expectFailure(await tidemark(['run', job, '--checkpoint', join(dir, 'cp')]), 2, 'Job field `batch.maxRecordsPerPartition` must be a positive whole number; got "thirty".');
    const sink = write(join(dir, 'sink.ts'), generatorJob(dir).replace("sinks: [fileSink({ dir: join(dir, 'out') })]", 'sinks: []'));
    expectFailure(await tidemark(['run', sink, '--checkpoint', join(dir, 'cp')]), 2, 'Job field `sinks` must be a non-empty array of sinks');
  });

  it('usage errors: unknown command, unknown flag, no checkpoint directory: exit 2', async () => {
    const dir = fresh();
    const job = write(join(dir, 'job.ts'), generatorJob(dir));
    expectFailure(await tidemark(['frobnicate']), 2, 'Unknown command "frobnicate"');
    expectFailure(await tidemark(['run', job, '--checkpiont', 'x']), 2, "Unknown option '--checkpiont'");
    expectFailure(await tidemark(['run', job]), 2, 'No checkpoint directory: pass --checkpoint DIR, set TIDEMARK_CHECKPOINT');
  });

  it('a checkpoint of another job: exit 4, nothing written', async () => {
    const dir = fresh();
    const cp = join(dir, 'cp');
    const a = write(join(dir, 'a.ts'), generatorJob(dir, { name: 'job-a' }));
    expect((await tidemark(['run', a, '--checkpoint', cp, '--once', '--log-level', 'warn'])).code).toBe(0);
    const contents = async (): Promise<unknown> => {
      const { sizeOnDisk: _size, ...rest } = report(await tidemark(['inspect', cp, '--json']));
      return rest;
    };
    const before = await contents();
    const b = write(join(dir, 'b.ts'), generatorJob(join(dir, 'b'), { name: 'job-b' }));
    expectFailure(await tidemark(['run', b, '--checkpoint', cp]), 4, `Checkpoint ${cp} belongs to another job: its job name is job-a, this job's is job-b.`);
    expect(await contents()).toEqual(before);
    expect(allOutputs(join(dir, 'b'))).toEqual([]);
  });

  it('a locked checkpoint: exit 3 for run and reset, naming the owner', async () => {
    const dir = fresh();
    const cp = join(dir, 'cp');
    const job = write(join(dir, 'job.ts'), generatorJob(dir, { partitions: 1, size: 20, maxRecordsPerPartition: 10, gateFrom: 2 }));
    const daemon = start(['run', job, '--checkpoint', cp]);
    await daemon.waitFor(() => existsSync(join(dir, 'entered-2')), 'batch 2 reaches the transform');
    const second = await tidemark(['run', job, '--checkpoint', cp, '--once']);
    expectFailure(second, 3, `is locked by another process (pid ${daemon.pid} on `);
    const offsetsFile = write(join(dir, 'offsets.json'), JSON.stringify({ 'generated/0': 0 }));
    expectFailure(await tidemark(['reset', cp, '--to', offsetsFile, '--yes']), 3, `pid ${daemon.pid}`);
    write(join(dir, 'gate'), '');
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    expect(allOutputs(dir)).toEqual(offsets(1, 0, 20));
  });

  describe('a damaged checkpoint: exit 7, says so, suggests inspect, never starts from scratch', () => {
    async function damaged(damage: (db: string) => void): Promise<{ r: Result; dir: string; cp: string }> {
      const dir = fresh();
      const cp = join(dir, 'cp');
      const job = write(join(dir, 'job.ts'), generatorJob(dir, { partitions: 1, size: 50, maxRecordsPerPartition: 10 }));
      // Two runs: opening the database again moves the first run's writes from LevelDB's log into a table file.
      for (let i = 0; i < 2; i++) expect((await tidemark(['run', job, '--checkpoint', cp, '--max-batches', '1', '--log-level', 'warn'])).code).toBe(0);
      expect(readdirSync(join(cp, 'db')).some((f) => f.endsWith('.ldb'))).toBe(true);
      damage(join(cp, 'db'));
      const before = snapshot(join(cp, 'db'));
      const r = await tidemark(['run', job, '--checkpoint', cp, '--once']);
      expect(snapshot(join(cp, 'db'))).toEqual(before);
      expect(allOutputs(dir)).toEqual(offsets(1, 0, 20));
      return { r, dir, cp };
    }

    it('a garbled MANIFEST', async () => {
      const { r, cp } = await damaged((db) => {
        const manifest = readFileSync(join(db, 'CURRENT'), 'utf8').trim();
        writeFileSync(join(db, manifest), Buffer.alloc(64, 0x5a));
      });
      expectFailure(r, 7, `Checkpoint ${cp} is damaged (LevelDB cannot open it`);
      expect(r.stderr).toContain(`tidemark inspect ${cp}`);
    });

    it('a truncated copy: a table file missing', async () => {
      const { r } = await damaged((db) => {
        for (const f of readdirSync(db)) if (f.endsWith('.ldb')) rmSync(join(db, f));
      });
      expectFailure(r, 7, /is damaged \(.*missing files/);
    });

    it('no CURRENT file', async () => {
      const { r } = await damaged((db) => rmSync(join(db, 'CURRENT')));
      expectFailure(r, 7, 'is damaged (the LevelDB directory has no CURRENT file (truncated?))');
    });
  });

  it('a source that cannot be reached: exit 6', async () => {
    const dir = fresh();
    const job = write(join(dir, 'job.ts'), `import { defineJob, fileSink, SourceUnreachableError } from 'tidemark';
export default defineJob({
  name: 'remote',
  source: {
    id: 'remote:events',
    async partitions() { throw new SourceUnreachableError('Cannot reach broker 127.0.0.1:1 (connection refused)'); },
    async offsets() { return {}; },
    async startingOffsets() { return {}; },
    async *read() {},
    async close() {},
  },
  sinks: [fileSink({ dir: ${JSON.stringify(join(dir, 'out'))} })],
  transform: (records) => records,
});
`);
    expectFailure(await tidemark(['run', job, '--checkpoint', join(dir, 'cp'), '--once']), 6,
      'Cannot reach broker 127.0.0.1:1 (connection refused). Check that the source is running and reachable');
  });
  it('log tail --from below the log start: exit 2 naming the start; beyond the end: nothing, exit 0', async () => {
    const dir = fresh();
    expect((await tidemark(['log', 'create', dir, '--partitions', '1'])).code).toBe(0);
    const append = await tidemark(['log', 'append', dir, 'v0', 'v1', 'v2', 'v3', 'v4']);
    expect(append.code).toBe(0);
    await (await EmbeddedLog.open(dir, { create: false })).trim(0, 3);
    expectFailure(await tidemark(['log', 'tail', dir, '--from', '1']), 2, '--from 1: events/0 starts at offset 3 (earlier records were removed). Use --from 3 or later.');
    const tail = await tidemark(['log', 'tail', dir, '--from', '3']);
    expect({ code: tail.code, lines: tail.stdout.trim().split('\n').map((l) => l.split('\t')[0]) }).toEqual({ code: 0, lines: ['events/0@3', 'events/0@4'] });
    expect(await tidemark(['log', 'tail', dir, '--from', '9'])).toMatchObject({ code: 0, stdout: '' });
  });
});
