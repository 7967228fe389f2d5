// One process owns a checkpoint: the lock is proper-lockfile's, the directory
// `tidemark.lock/`, refreshed every second and watched by proper-lockfile (a lock that
// vanished or whose mtime another process changed is reported compromised). Inside it,
// `owner.json` names its owner (host, machine, boot, PID namespace, pid, process start time,
// and a random nonce). proper-lockfile creates the lock with `mkdir`; tidemark gives it an
// `fs` whose mkdir builds the directory whole under a temporary name, owner inside, then
// renames it into place — so no one ever sees a lock without its owner. proper-lockfile's
// own staleness rule (delete a lock not refreshed for `stale` ms) is off: `stale` is a
// century, because a SIGSTOPped owner is alive; and a lock with its owner inside is not
// removable by rmdir() anyway, should another program apply a shorter one.
//
// The rule (DESIGN.md invariant 7): a lock is taken over only when its owner is provably
// gone — same machine, and an earlier boot, or in the same PID namespace its pid is dead or
// runs another process (another start time). A live owner is refused, frozen or not; one
// that cannot be checked from here (another host, another PID namespace, an unreadable
// lock) is refused too, with the lock named, for a human to remove once checked.
//
// Two starters taking one dead lock over: each hard-links the lock's owner.json to a name
// made of the dead owner's nonce; link() fails if that name exists, so one wins; the winner
// reads the linked file back (the same inode) and, only if it is still the dead owner's,
// renames the lock directory away and removes it, then locks again. No starter can remove
// a lock it did not decide on, and the lock is never an empty directory that a rename would
// replace.
//
// An owner whose lock is no longer its own (removed, replaced) stops before its next write:
// assertHeld() throws once proper-lockfile reported it, or reads owner.json itself when the
// last confirmation is late (the process was frozen or its event loop blocked; a lock
// replaced within the same second on a file system with 1 s mtimes has an mtime that looks
// like the owner's own, and only the nonce tells).
import * as fs from 'node:fs';
import { link, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync, readlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as lockfile from 'proper-lockfile';
import { CheckpointLockedError, LockCompromisedError } from './errors';

export interface LockOwner {
  readonly host: string;
  readonly pid: number;
  /** The process start time from /proc, so a recycled pid is not mistaken for the owner. */
  readonly startTime: string | null;
  readonly since: number;
  /** Random, this lock's own: the owner's proof that the lock file is still the one it created. */
  readonly nonce: string;
  /** /etc/machine-id: tells this machine from another one with the same hostname. */
  readonly machineId: string | null;
  /** The kernel's boot id: an owner recorded in an earlier boot of this machine is gone. */
  readonly bootId: string | null;
  /** The PID namespace (/proc/self/ns/pid): a pid means something only inside it. */
  readonly pidNs: string | null;
}

export interface CheckpointLock {
  /** Throws LockCompromisedError once the lock is lost; called before every checkpoint and sink write. */
  assertHeld(): void;
  release(): Promise<void>;
}

/** A lock not refreshed for this long has a frozen or dead owner: readers say so; it is never by itself a reason to take the lock. */
export const STALE_MS = 10_000;
const UPDATE_MS = 1_000;
/**
 * proper-lockfile's `stale`: a century, so that its own rule (remove a lock not refreshed
 * for `stale` ms) never fires. It is only compared with times, never a timer's delay, and
 * `update` stays UPDATE_MS (proper-lockfile clamps it to stale/2 at most).
 */
const NEVER_STALE_MS = 100 * 365 * 24 * 3600 * 1000;
/** A confirmation of ownership older than this is late: assertHeld reads the lock file itself. */
const LATE_MS = 2 * UPDATE_MS;
/**
 * A candidate or takeover mark older than this was left by a starter killed mid-way (a
 * takeover takes milliseconds). A starter that finds a younger one waits for it to go.
 */
const ABANDONED_TAKEOVER_MS = 10_000;
/** How long a starter keeps trying to take a dead owner's lock over: past one abandoned mark's age. */
const TAKEOVER_PATIENCE_MS = ABANDONED_TAKEOVER_MS + 5_000;

export const lockPath = (dir: string): string => join(dir, 'tidemark.lock');
/** The owner record, inside proper-lockfile's lock directory. */
export const ownerPath = (dir: string): string => join(lockPath(dir), 'owner.json');
const takeoverPath = (dir: string, nonce: string): string => join(dir, `tidemark.lock.${nonce}.takeover`);
/** Where a lock directory is renamed before it is removed, so the lock is never seen empty. */
const removedPath = (dir: string, nonce: string): string => join(dir, `tidemark.lock.${nonce}.removed`);

const readText = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
};

/** Fields of /proc/<pid>/stat after the parenthesised command name: [0] state, [19] starttime. */
function procStat(pid: number): string[] | null {
  const stat = readText(`/proc/${pid}/stat`);
  return stat === null ? null : stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function pidNamespace(pid: number | 'self'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

function thisProcess(): LockOwner {
  return {
    host: hostname(), pid: process.pid, startTime: procStat(process.pid)?.[19] ?? null, since: Date.now(),
    nonce: randomBytes(12).toString('hex'), machineId: readText('/etc/machine-id'),
    bootId: readText('/proc/sys/kernel/random/boot_id'), pidNs: pidNamespace('self'),
  };
}

/**
 * The one liveness check, for taking the lock and for `inspect`: `alive` true (it runs),
 * false (provably gone), or null with the reason it cannot be told from here.
 */
export function ownerLiveness(owner: LockOwner, here: LockOwner = thisProcess()): { alive: boolean | null; unverifiable: string | null } {
  const cannot = (why: string) => ({ alive: null, unverifiable: why });
  if (owner.host !== here.host) return cannot(`it runs on another host, ${owner.host}`);
  // The same kernel (boot id) is the same machine, in this boot; another boot of the same
  // machine (machine id) has no process left from before.
  if (owner.bootId === null || here.bootId === null || owner.bootId !== here.bootId) {
    if (owner.machineId !== null && owner.machineId === here.machineId) return { alive: false, unverifiable: null };
    return cannot(`it runs on another machine named ${owner.host}, or this one rebooted without /etc/machine-id to tell`);
  }
  if (owner.pidNs === null || here.pidNs === null || owner.pidNs !== here.pidNs) return cannot('its pid is in another PID namespace (a container?)');
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    return { alive: (err as NodeJS.ErrnoException).code === 'EPERM', unverifiable: null };
  }
  const stat = procStat(owner.pid);
  if (stat?.[0] === 'Z') return { alive: false, unverifiable: null }; // killed, not yet reaped by its parent
  const start = stat?.[19] ?? null;
  return { alive: owner.startTime === null || start === null || start === owner.startTime, unverifiable: null };
}

function parseOwner(text: string | null): LockOwner | null {
  if (text === null) return null;
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    return typeof o.nonce === 'string' && typeof o.pid === 'number' && typeof o.host === 'string' ? o as LockOwner : null;
  } catch {
    return null;
  }
}

export async function readLockOwner(dir: string): Promise<LockOwner | undefined> {
  return parseOwner(await readFile(ownerPath(dir), 'utf8').catch(() => null)) ?? undefined;
}

export function describeOwner(owner: LockOwner | undefined): string {
  return owner ? `pid ${owner.pid} on ${owner.host}, since ${new Date(owner.since).toISOString()}` : 'owner unknown';
}

/** What is known about a checkpoint's lock, read once; `decideTakeover` decides from it. */
export interface LockState {
  /** The lock exists. */
  readonly present: boolean;
  /** When its owner last refreshed it (mtime, ms since the epoch); null when absent. */
  readonly refreshedAt: number | null;
  /** The recorded owner; null when it cannot be read (a lock left by an older tidemark or another program, a damaged record). */
  readonly owner: LockOwner | null;
  /** Whether the owner's process runs: null when it cannot be told from here. */
  readonly alive: boolean | null;
  /** Why it cannot be told (when `alive` is null and the lock is present). */
  readonly unverifiable: string | null;
}

/** The lock's state as the liveness check sees it now (read-only). */
export async function readLockState(dir: string): Promise<LockState> {
  const st = await stat(lockPath(dir)).catch(() => undefined);
  if (!st) return { present: false, refreshedAt: null, owner: null, alive: null, unverifiable: null };
  const owner = st.isDirectory() ? await readLockOwner(dir) ?? null : null;
  if (owner === null) {
    // Released or taken over meanwhile (the directory renamed away): free, the caller looks again.
    if (st.isDirectory() && !(await stat(lockPath(dir)).catch(() => undefined))) return readLockState(dir);
    const why = !st.isDirectory() ? 'the lock is a file, left by a tidemark older than this one'
      : (await readdir(lockPath(dir)).catch(() => [])).length === 0 ? 'the lock is an empty directory, left by a tidemark older than this one or another program'
        : 'its owner record cannot be read';
    return { present: true, refreshedAt: st.mtimeMs, owner, alive: null, unverifiable: why };
  }
  return { present: true, refreshedAt: st.mtimeMs, owner, ...ownerLiveness(owner) };
}

/**
 * What a process that wants the lock does, from its state: `free` (nobody holds it),
 * `take-over` (its owner is provably gone), `refuse-live-owner` (it runs, frozen or not),
 * or `refuse-unverifiable` (it cannot be checked from here: a human decides).
 */
export type TakeoverDecision = 'free' | 'refuse-live-owner' | 'refuse-unverifiable' | 'take-over';

export function decideTakeover(state: LockState): TakeoverDecision {
  if (!state.present) return 'free';
  if (state.alive === false && state.owner !== null) return 'take-over';
  return state.alive === true ? 'refuse-live-owner' : 'refuse-unverifiable';
}

/** For readers (`inspect`), as a process that wants the lock would see it: `held` — it would be refused; `stale` — it would take it over. */
export function lockStatus(state: LockState): { readonly held: boolean; readonly stale: boolean; readonly owner: LockOwner | null } {
  const decision = decideTakeover(state);
  return { held: decision.startsWith('refuse'), stale: decision === 'take-over', owner: state.owner };
}

/** Whether the lock is there and refreshed within STALE_MS (read-only; tests use it to tell a takeover that did not wait). */
export async function isLocked(dir: string): Promise<boolean> {
  const st = await stat(lockPath(dir)).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs <= STALE_MS;
}

function refusal(dir: string, state: LockState): CheckpointLockedError {
  let owner = describeOwner(state.owner ?? undefined);
  if (state.refreshedAt !== null && Date.now() - state.refreshedAt > STALE_MS) {
    owner += `; not refreshed for ${Math.round((Date.now() - state.refreshedAt) / 1000)} s: stopped or frozen`;
  }
  if (state.alive === true) return new CheckpointLockedError(dir, owner);
  const why = state.unverifiable
    ?? (state.alive === false ? `it is gone, but other starters kept taking its lock over for ${TAKEOVER_PATIENCE_MS / 1000} s (or one was killed doing so)` : 'it cannot be checked from here');
  return new CheckpointLockedError(dir, owner, { why, lockFile: lockPath(dir) });
}

/** Removes the lock of an owner that is gone, unless another starter does; returns once the caller should look again. */
async function removeDeadLock(dir: string, dead: LockOwner): Promise<void> {
  const mark = takeoverPath(dir, dead.nonce);
  try {
    await link(ownerPath(dir), mark);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return; // gone already
    if (code !== 'EEXIST') throw err;
    // Another starter is taking this lock over (a few ms), or was killed doing so.
    const st = await stat(mark).catch(() => undefined);
    if (st && Date.now() - st.ctimeMs > ABANDONED_TAKEOVER_MS) await rm(mark, { force: true });
    else await new Promise((r) => setTimeout(r, 50));
    return;
  }
  try {
    // The mark is the inode the lock named when linked: if that is no longer the dead
    // owner's, another starter took it over first and this one leaves it alone. While the
    // mark is there, no other starter removes the lock, and so no one can lock anew.
    if (parseOwner(await readFile(mark, 'utf8').catch(() => null))?.nonce !== dead.nonce) return;
    await removeLockDir(dir, dead.nonce);
  } finally {
    await rm(mark, { force: true });
  }
}

/** Renames the lock directory away, then removes it: the lock is gone at once, and never an empty directory a starter's rename would replace. */
async function removeLockDir(dir: string, nonce: string): Promise<void> {
  const removed = removedPath(dir, nonce);
  await rm(removed, { recursive: true, force: true }); // left by a process killed while removing it
  await rename(lockPath(dir), removed).catch(() => undefined);
  await rm(removed, { recursive: true, force: true });
}

/**
 * The `fs` proper-lockfile locks with, but for mkdir(): the lock directory is built whole,
 * owner inside, under a temporary name, then renamed into place — a lock never exists
 * without its owner. rename() fails on a directory that is not empty (another starter's
 * lock) and on a file, and would replace an empty one: a lock there, never made by this
 * tidemark, is left for the caller to refuse (looked for just before the rename: only a
 * foreign one made in that instant could be replaced).
 */
function lockFs(me: LockOwner): typeof fs {
  const exists = (path: string): NodeJS.ErrnoException => Object.assign(new Error(`EEXIST: ${path} exists`), { code: 'EEXIST' });
  const mkdirWhole = (path: string, done: (err: NodeJS.ErrnoException | null) => void): void => {
    const temp = `${path}.${me.nonce}.new`;
    void (async () => {
      if (await lstat(path).then(() => true, () => false)) throw exists(path);
      await mkdir(temp);
      try {
        await writeFile(join(temp, 'owner.json'), JSON.stringify(me));
        await rename(temp, path);
      } catch (err) {
        await rm(temp, { recursive: true, force: true });
        if (['EEXIST', 'ENOTEMPTY', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) throw exists(path);
        throw err;
      }
    })().then(() => done(null), (err: NodeJS.ErrnoException) => done(err));
  };
  return { ...fs, mkdir: mkdirWhole } as unknown as typeof fs;
}

export async function acquireLock(dir: string, onCompromised: (err: Error) => void = () => {}): Promise<CheckpointLock> {
  await mkdir(dir, { recursive: true });
  const me = thisProcess();
  // Set as soon as the lock is taken, before proper-lockfile's first refresh can report it lost.
  let held: ReturnType<typeof heldLock> | undefined = undefined;
  let unlock: () => Promise<void>;
  const giveUpAt = Date.now() + TAKEOVER_PATIENCE_MS;
  for (;;) {
    try {
      unlock = await lockfile.lock(dir, {
        lockfilePath: lockPath(dir), realpath: false, retries: 0, stale: NEVER_STALE_MS, update: UPDATE_MS, fs: lockFs(me),
        // The lock vanished, or another process changed its mtime (replaced it).
        onCompromised: (err) => held?.compromised(err),
      });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    }
    const state = await readLockState(dir);
    const decision = decideTakeover(state);
    if (decision === 'refuse-live-owner' || decision === 'refuse-unverifiable') throw refusal(dir, state);
    // Other starters keep winning (one of them owns it now), or a mark outlives its patience.
    if (Date.now() > giveUpAt) throw refusal(dir, await readLockState(dir));
    if (decision === 'take-over') await removeDeadLock(dir, state.owner!);
  }
  held = heldLock(dir, me, unlock, onCompromised);
  await removeAbandoned(dir);
  return held.lock;
}

/** Candidates, takeover marks and lock directories being removed, of starters killed mid-way (a starter needs milliseconds, not ABANDONED_TAKEOVER_MS): removed by the next owner. */
async function removeAbandoned(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [])) {
    if (!/^tidemark\.lock\..+\.(new|takeover|removed)$/.test(name)) continue;
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st && Date.now() - st.ctimeMs > ABANDONED_TAKEOVER_MS) await rm(join(dir, name), { recursive: true, force: true });
  }
}

function heldLock(dir: string, me: LockOwner, unlock: () => Promise<void>, onCompromised: (err: Error) => void) {
  let compromised: Error | undefined;
  let confirmedAt = Date.now();
  const lose = (reason: string): void => {
    if (compromised) return;
    compromised = new Error(reason);
    onCompromised(compromised);
  };
  /** Whether the lock is still this process's own (synchronous: a read of a small file). */
  const confirm = (): boolean => {
    if (compromised) return false;
    const current = parseOwner(readText(ownerPath(dir)));
    if (current?.nonce !== me.nonce) {
      lose(current ? `the lock is now held by ${describeOwner(current)}` : 'the lock was removed or replaced');
      return false;
    }
    confirmedAt = Date.now();
    return true;
  };
  const lock: CheckpointLock = {
    assertHeld() {
      if (!compromised && Date.now() - confirmedAt > LATE_MS) confirm();
      if (compromised) throw new LockCompromisedError(dir, compromised.message);
    },
    async release() {
      const mine = !compromised && parseOwner(readText(ownerPath(dir)))?.nonce === me.nonce;
      compromised ??= new Error('released');
      // proper-lockfile stops refreshing first (so the lock leaving is not reported as lost);
      // its rmdir() fails on a directory with an owner inside, which is removed here.
      await unlock().catch(() => undefined);
      if (mine) await removeLockDir(dir, me.nonce);
    },
  };
  return {
    lock,
    compromised(err: Error): void {
      if (confirm()) lose(`another process changed the lock's mtime (${err.message})`);
    },
  };
}
