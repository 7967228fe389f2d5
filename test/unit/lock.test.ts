// One process owns a checkpoint: the lock, its takeover after SIGKILL, and two real
// `tidemark run` processes on one directory.
import { mkdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CheckpointLockedError, LockCompromisedError } from '../../checkpoint/errors';
import { acquireLock, isLocked, lockPath, readLockOwner } from '../../checkpoint/lock';
import { openCheckpoint } from '../../checkpoint/store';
import { killAll, repoRoot, runTidemark, start, tidemark } from '../support/processes';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-lock-');
let n = 0;
const fresh = (): string => join(root, `cp${++n}`);

afterEach(killAll);

/** A child process that opens (and so locks) the checkpoint, says so, and stays. */
const holder = (dir: string) => start(process.execPath, [join(repoRoot, 'scripts', 'run-ts.js'), join(repoRoot, 'test', 'support', 'checkpoint-holder.ts'), dir]);

describe('acquireLock', () => {
  it('a second acquire on one directory fails with CheckpointLockedError naming the owner; release frees it', async () => {
    const dir = fresh();
    const first = await acquireLock(dir);
    const err = await acquireLock(dir).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointLockedError);
    expect(err).toMatchObject({ code: 'TIDEMARK_CHECKPOINT_LOCKED', exitCode: 3 });
    expect((err as Error).message).toContain(`pid ${process.pid} on ${hostname()}`);
    expect((err as Error).message).toContain(dir);
    expect(await isLocked(dir)).toBe(true);

    await first.release();
    expect(await isLocked(dir)).toBe(false);
    expect(await readLockOwner(dir)).toBeUndefined();
    const again = await acquireLock(dir);
    expect((await readLockOwner(dir))?.pid).toBe(process.pid);
    await again.release();
  });

  it('openCheckpoint holds the lock until close()', async () => {
    const dir = fresh();
    const store = await openCheckpoint(dir);
    await expect(openCheckpoint(dir)).rejects.toThrow(CheckpointLockedError);
    await store.close();
    const again = await openCheckpoint(dir);
    await again.close();
  });

  it('takes over at once a lock whose owner was killed with SIGKILL (not waiting for staleness)', async () => {
    const dir = fresh();
    const child = holder(dir);
    await child.waitForLine(/^locked$/);
    expect((await readLockOwner(dir))?.pid).toBe(child.pid);
    await expect(acquireLock(dir)).rejects.toThrow(`pid ${child.pid}`);

    child.proc.kill('SIGKILL');
    expect((await child.exited).signal).toBe('SIGKILL');
    // The lock is still fresh by proper-lockfile's clock (its owner refreshed it ≤ 1 s ago,
    // stale is 10 s): taking it now can only be the dead-owner takeover.
    expect(await isLocked(dir)).toBe(true);
    const lock = await acquireLock(dir);
    expect((await readLockOwner(dir))?.pid).toBe(process.pid);
    lock.assertHeld();
    await lock.release();
  });

  it('does not take over a lock whose owner is alive', async () => {
    const dir = fresh();
    const child = holder(dir);
    await child.waitForLine(/^locked$/);
    for (let i = 0; i < 2; i++) {
      const err = await acquireLock(dir).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CheckpointLockedError);
      expect((err as Error).message).toContain(`pid ${child.pid}`);
    }
    expect((await readLockOwner(dir))?.pid).toBe(child.pid);
    expect(child.proc.exitCode).toBeNull();
  });

  it('a recorded owner whose pid now belongs to another process (other start time) is treated as gone', async () => {
    const dir = fresh();
    mkdirSync(lockPath(dir), { recursive: true });
    const lockIno = statSync(lockPath(dir)).ino;
    writeFileSync(join(dir, 'tidemark.owner.json'), JSON.stringify({ host: hostname(), pid: process.pid, startTime: 'not-this-process', since: 1, lockIno }));
    const lock = await acquireLock(dir);
    expect((await readLockOwner(dir))?.startTime).not.toBe('not-this-process');
    await lock.release();
  });

  it('a lock with no owner record, or an owner record of another lock, is kept while refreshed and taken over only once stale', async () => {
    const dir = fresh();
    mkdirSync(lockPath(dir), { recursive: true });
    // The owner file describes an older lock directory (another inode): it says nothing about this one.
    writeFileSync(join(dir, 'tidemark.owner.json'), JSON.stringify({ host: hostname(), pid: 999_999_999, startTime: null, since: 1, lockIno: statSync(lockPath(dir)).ino + 1 }));
    // A live owner that has not recorded itself yet keeps refreshing the lock: never taken.
    const refresh = setInterval(() => utimesSync(lockPath(dir), new Date(), new Date()), 500);
    try {
      await expect(acquireLock(dir)).rejects.toThrow(CheckpointLockedError);
    } finally {
      clearInterval(refresh);
    }
    // A dead one (a process killed between creating the lock and recording itself) lets it go stale.
    const started = Date.now();
    const lock = await acquireLock(dir);
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_000); // only once stale, never at once
    expect((await readLockOwner(dir))?.pid).toBe(process.pid);
    await lock.release();
  }, 60_000);

  it('a lock taken away from under its owner is reported compromised before the next write', async () => {
    const dir = fresh();
    const compromised: Error[] = [];
    const store = await openCheckpoint(dir, { onLockCompromised: (e) => compromised.push(e) });
    try {
      rmSync(lockPath(dir), { recursive: true, force: true });
      for (let i = 0; i < 100 && compromised.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(compromised).toHaveLength(1);
      await expect(store.planBatch({ id: 1, state: 'planned', ranges: [], fingerprint: 'f', plannedAt: 0 })).rejects.toThrow(LockCompromisedError);
      await expect(store.planBatch({ id: 1, state: 'planned', ranges: [], fingerprint: 'f', plannedAt: 0 })).rejects.toMatchObject({ exitCode: 10 });
    } finally {
      await store.close();
    }
  });
});

describe('two `tidemark run` on one checkpoint', () => {
  it('the second exits with code 3 and a one-line message; inspect still reads the running one', async () => {
    const dir = fresh();
    const jobFile = join(dir, 'job.ts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(jobFile, `
import { defineJob, generatorSource, memorySink } from 'tidemark';
export default defineJob({
  name: 'lock-test',
  source: generatorSource({ partitions: 2, size: 50 }),
  sinks: [memorySink('m')],
  transform: (records) => records.map((r) => r.offset),
  checkpoint: { dir: ${JSON.stringify(join(dir, 'checkpoint'))} },
});
`);
    const first = tidemark(['run', jobFile]);
    await first.waitForLine(/"msg":"batch 1 committed"/);

    const second = await runTidemark(['run', jobFile]);
    expect(second.code).toBe(3);
    const lines = second.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tidemark: Checkpoint .* is locked by another process \(pid \d+ on /);
    expect(lines[0]).toContain(`pid ${first.pid} `);
    expect(second.stderr).not.toMatch(/\n\s+at /);
    expect(first.proc.exitCode).toBeNull();

    // Read-only inspection works beside the running daemon (LevelDB's own LOCK is held by it).
    const inspect = await runTidemark(['inspect', join(dir, 'checkpoint'), '--json']);
    expect(inspect.stderr).toBe('');
    expect(inspect.code).toBe(0);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ job: 'lock-test', lastCommitted: 1, positions: { 'generated/0': 50, 'generated/1': 50 }, inFlight: null });

    first.proc.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    // Drained and released: a new run takes the checkpoint.
    const third = await runTidemark(['run', jobFile, '--once']);
    expect(third.code).toBe(0);
  });
});
