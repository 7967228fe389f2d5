// One process owns a checkpoint: the lock, its takeover after SIGKILL, and two real
// `tidemark run` processes on one directory.
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CheckpointLockedError, LockCompromisedError } from '../../checkpoint/errors';
import { acquireLock, isLocked, lockPath, ownerPath, readLockOwner, STALE_MS, type LockOwner } from '../../checkpoint/lock';
import { openCheckpoint } from '../../checkpoint/store';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { killAll, nodeScript, repoRoot, runTidemark, start, tidemark } from '../support/processes';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-lock-');
let n = 0;
const fresh = (): string => join(root, `cp${++n}`);

afterEach(killAll);

/** Writes a lock as this process would, with `fields` changed: another owner, as seen from here. */
function writeOwner(dir: string, fields: Partial<LockOwner>): void {
  mkdirSync(dir, { recursive: true });
  const here = { host: hostname(), pid: process.pid, startTime: null, since: Date.now(), nonce: `other-${++n}`,
    machineId: readFileSync('/etc/machine-id', 'utf8').trim(), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    pidNs: readlinkSync('/proc/self/ns/pid') };
  mkdirSync(lockPath(dir));
  writeFileSync(ownerPath(dir), JSON.stringify({ ...here, ...fields }));
}

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
    // The lock is still fresh (its owner refreshed it ≤ 1 s ago, stale is 10 s): taking it
    // now can only be the dead-owner takeover.
    expect(await isLocked(dir)).toBe(true);
    const lock = await acquireLock(dir);
    expect((await readLockOwner(dir))?.pid).toBe(process.pid);
    lock.assertHeld();
    await lock.release();
  });

  it('a takeover mark left by a starter killed mid-way is waited out, not refused as "cannot be checked" (2026-11-30, the PostgreSQL torture)', async () => {
    const dir = fresh();
    writeOwner(dir, { pid: 2 ** 22 + 7, nonce: 'dead-owner' }); // a pid no process has: gone
    // The killed starter had linked the owner record to its mark and died before removing it.
    linkSync(ownerPath(dir), join(dir, 'tidemark.lock.dead-owner.takeover'));
    const started = Date.now();
    const lock = await acquireLock(dir);
    expect((await readLockOwner(dir))?.pid).toBe(process.pid);
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000); // not before the mark is abandoned: a live starter may hold it
    expect(readdirSync(dir).sort()).toEqual(['tidemark.lock']);
    await lock.release();
  }, 30_000);

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
    writeOwner(dir, { pid: process.pid, startTime: 'not-this-process' });
    const lock = await acquireLock(dir);
    expect((await readLockOwner(dir))?.startTime).not.toBe('not-this-process');
    await lock.release();
  });

  it('an owner that cannot be checked from here (another PID namespace, another host, an old lock directory) is refused, stale or not, naming the file to remove', async () => {
    const old = new Date(Date.now() - 60_000);
    const cases: Array<[string, (dir: string) => void]> = [
      // Its pid is not visible from here (999999999 runs nowhere), and that proves nothing: it lives in another namespace.
      ['another PID namespace', (dir) => writeOwner(dir, { pid: 999_999_999, pidNs: 'pid:[1]' })],
      ['another host', (dir) => writeOwner(dir, { pid: 999_999_999, host: `not-${hostname()}` })],
      ['an empty directory, left by a tidemark older', (dir) => mkdirSync(lockPath(dir), { recursive: true })],
      ['a file, left by a tidemark older', (dir) => writeFileSync(lockPath(dir), '{}')],
    ];
    for (const [why, make] of cases) {
      const dir = fresh();
      mkdirSync(dir, { recursive: true });
      make(dir);
      utimesSync(lockPath(dir), old, old); // long stale: not refreshed for a minute
      const err = await acquireLock(dir).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CheckpointLockedError);
      expect((err as Error).message).toContain(why);
      expect((err as Error).message).toContain(`remove ${lockPath(dir)} by hand`);
      expect(statSync(lockPath(dir)).mtimeMs).toBeCloseTo(old.getTime(), -1); // left alone
    }
  });

  it('of starters racing to take over one dead owner\'s lock, exactly one wins; the others are refused naming it', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = fresh();
      writeOwner(dir, { pid: 999_999_999 }); // same machine, boot and namespace: provably gone
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireLock(dir)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CheckpointLockedError);
      const lock = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value;
      lock.assertHeld();
      expect(readdirSync(dir)).toEqual(['tidemark.lock']); // no takeover marks or candidates left behind
      await lock.release();
    }
  });

  it("is proper-lockfile's: another process's lockfile.check says locked while a daemon holds it, and lockfile.lock is refused; free once released", async () => {
    const dir = fresh();
    const child = holder(dir);
    await child.waitForLine(/^locked$/);
    // Another process, proper-lockfile's defaults (stale 10 s, which the daemon's refresh keeps it under).
    const plf = require.resolve('proper-lockfile');
    const ask = async (): Promise<string> => {
      const other = nodeScript(`const lockfile = require(${JSON.stringify(plf)});
const [dir, lockfilePath] = process.argv.slice(1);
lockfile.check(dir, { lockfilePath, realpath: false }).then(async (locked) => {
  const took = await lockfile.lock(dir, { lockfilePath, realpath: false }).then((release) => release().then(() => 'took'), (e) => e.code);
  console.log(locked + ' ' + took);
});`, [dir, lockPath(dir)]);
      const line = await other.waitForLine(/^(true|false) /);
      await other.exited;
      return line;
    };
    await new Promise((r) => setTimeout(r, 2_500)); // refreshed since: proper-lockfile's own update, not just the creation
    expect(await ask()).toBe('true ELOCKED');
    expect(statSync(lockPath(dir)).isDirectory()).toBe(true); // proper-lockfile's mkdir, the owner record inside
    expect((await readLockOwner(dir))?.pid).toBe(child.pid);
    child.proc.kill('SIGTERM');
    await child.exited;
    rmSync(lockPath(dir), { recursive: true, force: true }); // its owner is gone (as a takeover would do)
    expect(await ask()).toBe('false took');
  });

  it("proper-lockfile's compromise signal: another process changing the lock's mtime makes its owner stop", async () => {
    const dir = fresh();
    const compromised: Error[] = [];
    const lock = await acquireLock(dir, (e) => compromised.push(e));
    const old = new Date(Date.now() - 60_000);
    utimesSync(lockPath(dir), old, old);
    for (let i = 0; i < 50 && compromised.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(compromised).toHaveLength(1);
    expect(compromised[0]!.message).toContain("another process changed the lock's mtime");
    expect(() => lock.assertHeld()).toThrow(LockCompromisedError);
    await lock.release();
    expect((await readLockOwner(dir))?.pid).toBe(process.pid); // not its own any more: left for a takeover to decide
  });

  it('of starters racing for a free checkpoint, exactly one wins, refused as a live owner\'s', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = fresh();
      mkdirSync(dir, { recursive: true });
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireLock(dir)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      // Never as a lock whose owner cannot be read (that refusal names the lock to remove by hand).
      for (const r of results) if (r.status === 'rejected') expect((r.reason as Error).message).not.toContain('by hand');
      await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release();
      expect(readdirSync(dir)).toEqual([]); // released: renamed away and removed
    }
  });

  it('another process never sees the lock without its owner record, while it is taken and released again and again', async () => {
    const dir = fresh();
    mkdirSync(dir, { recursive: true });
    // Polls without pause: a lock directory that stays (same inode, held open so that it is
    // not reused by the next lock) while owner.json is missing.
    const watcher = nodeScript(`const fs = require('node:fs');
const [lock] = process.argv.slice(1);
const ino = () => { try { return fs.statSync(lock).ino; } catch { return null; } };
console.log('watching');
for (;;) {
  let fd;
  try { fd = fs.openSync(lock, 'r'); } catch { continue; }
  const held = fs.fstatSync(fd).ino;
  if (!fs.existsSync(lock + '/owner.json') && ino() === held) { console.log('ownerless'); break; }
  fs.closeSync(fd);
}`, [lockPath(dir)]);
    await watcher.waitForLine(/^watching$/);
    for (let i = 0; i < 200 && !watcher.stdout().includes('ownerless'); i++) await (await acquireLock(dir)).release();
    expect(watcher.stdout()).not.toContain('ownerless');
  });

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

describe("LevelDB's own LOCK", () => {
  it('held by another process (one that opened db/ without tidemark\'s lock) is "locked", exit 3, never "damaged"', async () => {
    const dir = fresh();
    await (await openCheckpoint(dir)).close(); // a checkpoint, closed: tidemark's lock is free
    const level = require.resolve('classic-level');
    const other = nodeScript(`const { ClassicLevel } = require(${JSON.stringify(level)});
new ClassicLevel(process.argv[1]).open().then(() => { console.log('open'); setInterval(() => {}, 1000); });`, [join(dir, 'db')]);
    await other.waitForLine(/^open$/);
    const err = await openCheckpoint(dir).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointLockedError);
    expect(err).toMatchObject({ code: 'TIDEMARK_CHECKPOINT_LOCKED', exitCode: 3 });
    expect((err as Error).message).toContain(join(dir, 'db', 'LOCK'));
    expect(existsSync(lockPath(dir))).toBe(false); // tidemark's lock released on the way out
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

describe('an owner frozen with SIGSTOP past the stale time (invariant 7)', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  /** A daemon's job on the embedded log: batch 1 is there at start; a sink `pause` that stops its own process at batch 2 when `pauseAt2`. */
  async function daemonJob(name: string, pauseAt2: boolean) {
    const dir = join(root, name);
    const log = await EmbeddedLog.open(join(dir, 'log'), { partitions: 1 });
    await log.append(Array.from({ length: 10 }, (_, i) => ({ value: `a${i}`, partition: 0 })));
    const out = join(dir, 'out');
    const files = join(out, 'files'); // the file sink's directory (its name)
    const job = join(dir, 'job.ts');
    writeFileSync(job, `import { defineJob, embeddedLogSource, fileSink } from 'tidemark';
const pause = { name: 'pause', write: async (batch: { id: number }) => { if (${pauseAt2} && batch.id === 2) process.kill(process.pid, 'SIGSTOP'); } };
export default defineJob({
  name: ${JSON.stringify(name)},
  source: embeddedLogSource({ dir: ${JSON.stringify(join(dir, 'log'))} }),
  sinks: [pause, fileSink({ dir: ${JSON.stringify(out)} })],
  transform: (records) => records.map((r) => r.value!.toString()),
  batch: { pollIntervalMs: 200 },
});
`);
    const cp = join(dir, 'cp');
    const daemon = tidemark(['run', job, '--checkpoint', cp]);
    await daemon.waitForLine(/"msg":"batch 1 committed"/);
    return { log, files, job, cp, daemon };
  }

  /** Replaces the lock while its owner is frozen, as a takeover by another process would (one that removed it by hand, then started). */
  function takeLockFrom(cp: string): void {
    const theirs = JSON.parse(readFileSync(ownerPath(cp), 'utf8')) as LockOwner;
    rmSync(lockPath(cp), { recursive: true });
    mkdirSync(lockPath(cp));
    writeFileSync(ownerPath(cp), JSON.stringify({ ...theirs, pid: process.pid, nonce: 'the-new-owner', since: Date.now() }));
  }

  it('is not taken over: a second run exits 3 naming it, and after SIGCONT the first carries on', async () => {
    const { log, files, job, cp, daemon } = await daemonJob('frozen-kept', false);
    daemon.proc.kill('SIGSTOP');
    await sleep(STALE_MS + 1_500);
    expect(await isLocked(cp)).toBe(false); // stale by its mtime: the old lock took it over here

    const second = await runTidemark(['run', job, '--checkpoint', cp, '--once']);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain(`pid ${daemon.pid} `);
    expect(second.stderr).toMatch(/stopped or frozen/);
    expect((await readLockOwner(cp))?.pid).toBe(daemon.pid);

    daemon.proc.kill('SIGCONT');
    await log.append([{ value: 'b0', partition: 0 }]);
    await daemon.waitForLine(/"msg":"batch 2 committed"/);
    daemon.proc.kill('SIGTERM');
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    expect(readdirSync(files).filter((f) => f.startsWith('batch-')).sort()).toEqual(['batch-1.jsonl', 'batch-2.jsonl']);
  }, 60_000);

  it('idle when its lock was taken: after SIGCONT it exits 10 without writing the checkpoint or the sink', async () => {
    const { log, files, cp, daemon } = await daemonJob('frozen-idle-taken', false);
    daemon.proc.kill('SIGSTOP');
    takeLockFrom(cp);
    await log.append([{ value: 'b0', partition: 0 }]); // work waiting for it when it wakes
    await sleep(2_500);
    daemon.proc.kill('SIGCONT');
    expect(await daemon.exited).toEqual({ code: 10, signal: null });
    expect(daemon.stderr()).toContain(`Lost the lock on checkpoint ${cp}`);
    expect(readdirSync(files).filter((f) => f.startsWith('batch-'))).toEqual(['batch-1.jsonl']);
    const inspect = await runTidemark(['inspect', cp, '--json']);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ lastCommitted: 1, inFlight: null });
    expect((await readLockOwner(cp))?.nonce).toBe('the-new-owner'); // and it did not remove the new owner's lock
  }, 60_000);

  it('frozen between two sink writes when its lock was taken: after SIGCONT the next sink is not written, and the batch stays staged; exit 10', async () => {
    const { log, files, cp, daemon } = await daemonJob('frozen-delivering-taken', true);
    await log.append([{ value: 'b0', partition: 0 }]);
    // The `pause` sink stops the daemon in batch 2's delivery, before the file sink's write.
    for (let i = 0; i < 100 && readFileSync(`/proc/${daemon.pid}/stat`, 'utf8').split(') ')[1]![0] !== 'T'; i++) await sleep(100);
    takeLockFrom(cp);
    await sleep(2_500);
    daemon.proc.kill('SIGCONT');
    expect(await daemon.exited).toEqual({ code: 10, signal: null });
    expect(readdirSync(files).filter((f) => f.startsWith('batch-'))).toEqual(['batch-1.jsonl']);
    const inspect = await runTidemark(['inspect', cp, '--json']);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ lastCommitted: 1, inFlight: { id: 2, state: 'staged' } });
  }, 60_000);
});
