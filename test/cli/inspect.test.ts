// `tidemark inspect`: for people and for scripts, beside a running daemon, and on a
// damaged checkpoint.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { generatorJob, report, start, tidemark, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-inspect-');
let n = 0;
function setup(options: Parameters<typeof generatorJob>[1] = {}): { dir: string; job: string; cp: string } {
  const dir = join(root, `t${++n}`);
  return { dir, job: write(join(dir, 'job.ts'), generatorJob(dir, options)), cp: join(dir, 'cp') };
}

/** Every file of a directory tree with its bytes. */
function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name)] = readFileSync(join(e.parentPath, e.name)).toString('base64');
  }
  return out;
}

describe('tidemark inspect', () => {
  it('shows a batch in flight with its staged output counts, the history, and the last N batches', async () => {
    // maxInFlight 1: the crash at batch 4's STAGE leaves batches 1–3 committed and batch 4 alone in flight.
    const { job, cp } = setup({ partitions: 2, size: 100, maxRecordsPerPartition: 10, maxInFlight: 1 });
    const crashed = await tidemark(['run', job, '--checkpoint', cp, '--log-level', 'warn'], { env: { TIDEMARK_CRASH_AT: 'staged:4' } });
    expect(crashed.signal).toBe('SIGKILL');

    const json = await tidemark(['inspect', cp, '--json', '--last', '2']);
    expect(json.code).toBe(0);
    const r = report(json);
    expect(r).toMatchObject({
      ok: true, damaged: [], format: 2, formatSupported: true, job: 'gen', source: 'generator:generated', sinks: ['files'],
      lastCommitted: 3, positions: { 'generated/0': 30, 'generated/1': 30 }, lock: { held: false, stale: true }, lost: [], resets: [],
    });
    expect(r.fingerprint).toMatch(/^sha256:/);
    expect(r.fingerprints).toEqual([{ fingerprint: r.fingerprint, since: expect.any(Number), note: 'first run' }]);
    expect(r.inFlight).toMatchObject({
      id: 4, state: 'staged', recordsIn: 20, outputsOut: { outputs: 20, 'dead-letters': 0 }, staged: { outputs: 20 },
      ranges: [{ topic: 'generated', partition: 0, from: 30, until: 40 }, { topic: 'generated', partition: 1, from: 30, until: 40 }],
    });
    expect(r.inFlight!.stagedBytes).toBeGreaterThan(0);
    expect(r.recentBatches.map((b) => b.id)).toEqual([3, 2]);
    const b3 = r.recentBatches[0]!;
    expect(b3).toMatchObject({ state: 'committed', recordsIn: 20, outputsOut: { outputs: 20 }, ranges: [{ partition: 0, from: 20, until: 30 }, { partition: 1, from: 20, until: 30 }] });
    expect(b3.committedAt).toBeGreaterThanOrEqual(b3.plannedAt);
    expect(Object.keys(b3.durations!)).toEqual(expect.arrayContaining(['plan', 'read', 'transform', 'stage', 'deliver']));
    expect(r.sizeOnDisk).toBeGreaterThan(0);

    const human = await tidemark(['inspect', cp]);
    expect(human.code).toBe(0);
    for (const text of [
      'job      gen (format 2', 'source   generator:generated', 'daemon   not running (its last owner, pid', 'is gone', 'on disk', `fingerprint ${r.fingerprint}`, 'first run',
      'generated/0', 'in flight: batch 4, staged', 'ranges   generated/0 [30, 40), generated/1 [30, 40)', 'staged   outputs 20',
      'redelivered as staged on restart', 'lost ranges: none', 'last 3 committed batches:', '20 records → outputs 20',
    ]) expect(human.stdout).toContain(text);
  });

  it('reads a checkpoint while its daemon runs, without taking the lock or disturbing it', async () => {
    const { dir, job, cp } = setup({ partitions: 1, size: 40, maxRecordsPerPartition: 10, gateFrom: 3 });
    const daemon = start(['run', job, '--checkpoint', cp]);
    await daemon.waitFor(() => existsSync(join(dir, 'entered-3')), 'batch 3 reaches the transform');
    const r = report(await tidemark(['inspect', cp, '--json']));
    expect(r.ok).toBe(true);
    expect(r.lock).toMatchObject({ held: true, stale: false });
    expect(r.lock.owner!.pid).toBe(daemon.pid);
    expect(r.lastCommitted).toBe(2);
    expect(r.positions).toEqual({ 'generated/0': 20 });
    expect(r.inFlight).toMatchObject({ id: 3, state: 'planned', staged: null });
    const human = await tidemark(['inspect', cp]);
    expect(human.stdout).toContain(`daemon   running (pid ${daemon.pid}`);
    // The daemon goes on as if nothing happened, and drains on SIGTERM.
    write(join(dir, 'gate'), '');
    await daemon.waitForLog(/^batch 4 committed$/);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    expect(report(await tidemark(['inspect', cp, '--json'])).lastCommitted).toBe(4);
  });

  it('on damaged LevelDB files: says what is damaged, lists the files, exits 7, changes nothing', async () => {
    const { job, cp } = setup({ partitions: 1, size: 30, maxRecordsPerPartition: 10 });
    expect((await tidemark(['run', job, '--checkpoint', cp, '--once', '--log-level', 'warn'])).code).toBe(0);
    const manifest = readFileSync(join(cp, 'db', 'CURRENT'), 'utf8').trim();
    writeFileSync(join(cp, 'db', manifest), Buffer.alloc(40, 0x33));
    const before = files(cp);
    const json = await tidemark(['inspect', cp, '--json']);
    expect(json.code).toBe(7);
    expect(json.stderr).toBe('');
    const r = report(json);
    expect(r.ok).toBe(false);
    expect(r.damaged[0]).toEqual({ part: 'leveldb', detail: expect.stringMatching(/^cannot open the database: .*Corruption/) });
    expect(r.files!.map((f) => f.name)).toEqual(expect.arrayContaining(['CURRENT', manifest]));
    expect(r.positions).toBeNull();
    const human = await tidemark(['inspect', cp]);
    expect(human.code).toBe(7);
    expect(human.stdout).toContain(`checkpoint ${cp} — DAMAGED`);
    expect(human.stdout).toContain('leveldb: cannot open the database');
    expect(human.stdout).toContain('never starts such a checkpoint from scratch silently');
    expect(files(cp)).toEqual(before);
  });

  it('on a damaged record: reports it and still shows what can be read', async () => {
    const { job, cp } = setup({ partitions: 1, size: 30, maxRecordsPerPartition: 10 });
    expect((await tidemark(['run', job, '--checkpoint', cp, '--once', '--log-level', 'warn'])).code).toBe(0);
    const db = new Level<string, Buffer>(join(cp, 'db'), { valueEncoding: 'buffer' });
    const value = (await db.get('batch!0000000000000002'))!;
    value[20]! ^= 0x01; // one flipped bit, as a bad sector gives
    await db.put('batch!0000000000000002', value);
    await db.close();
    const json = await tidemark(['inspect', cp, '--json']);
    expect(json.code).toBe(7);
    const r = report(json);
    expect(r.damaged).toEqual([{ part: 'batches', detail: expect.stringMatching(/^record batch!0000000000000002 is damaged: checksum mismatch: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8} over \d+ bytes$/) }]);
    expect(r).toMatchObject({ ok: false, job: 'gen', lastCommitted: 3, positions: { 'generated/0': 30 }, inFlight: null });
    const human = await tidemark(['inspect', cp]);
    expect(human.code).toBe(7);
    expect(human.stdout).toContain('batches: record batch!0000000000000002 is damaged: checksum mismatch');
    expect(human.stdout).toContain('what could still be read:');
    expect(human.stdout).toContain('generated/0              30');
  });

  it('a directory without a checkpoint: exit 2', async () => {
    const r = await tidemark(['inspect', join(root, 'nothing-here')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('There is no checkpoint in');
  });
});
