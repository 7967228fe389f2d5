// One process owns a checkpoint: a proper-lockfile lock on the directory, held for the
// whole run. Its mtime is refreshed every second; a lock whose owner stops refreshing
// goes stale after 10 s. A process killed with SIGKILL cannot release its lock, so the
// lock also records its owner (host, pid, process start time): a restart on the same
// host takes the lock over at once when that exact process is gone, and only then.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
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
  /** The inode of the lock directory this owner created: an owner file describes only that lock. */
  readonly lockIno: number;
}

export interface CheckpointLock {
  /** Throws LockCompromisedError once the lock is lost; called before every checkpoint write. */
  assertHeld(): void;
  release(): Promise<void>;
}

/** A lock not refreshed for this long is stale: proper-lockfile lets the next process take it. */
export const STALE_MS = 10_000;
const UPDATE_MS = 1_000;

export const lockPath = (dir: string): string => join(dir, 'tidemark.lock');
// Beside the lock, not inside it: a file written into the lock directory would change
// its mtime, which proper-lockfile reads as another process taking the lock.
const ownerPath = (dir: string): string => join(dir, 'tidemark.owner.json');

/** Fields of /proc/<pid>/stat after the parenthesised command name: [0] state, [19] starttime. */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

const processStartTime = (pid: number): string | null => procStat(pid)?.[19] ?? null;

/** The one liveness check, for taking the lock and for `inspect`: the recorded process still runs (not a zombie, not a recycled pid). */
function isAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = procStat(owner.pid);
  if (stat?.[0] === 'Z') return false; // killed, not yet reaped by its parent
  const start = stat?.[19] ?? null;
  return owner.startTime === null || start === null || start === owner.startTime;
}

export async function readLockOwner(dir: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(ownerPath(dir), 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

export function describeOwner(owner: LockOwner | undefined): string {
  return owner ? `pid ${owner.pid} on ${owner.host}, since ${new Date(owner.since).toISOString()}` : 'owner unknown';
}

/** What is known about a checkpoint's lock, read once; `decideTakeover` decides from it. */
export interface LockState {
  /** The lock directory exists. */
  readonly present: boolean;
  /** When its owner last refreshed it (the lock directory's mtime, ms since the epoch); null when absent. */
  readonly refreshedAt: number | null;
  /** The recorded owner, when the record describes this very lock (same inode); null when unknown. */
  readonly owner: LockOwner | null;
  /** Whether the owner's process runs: null when it cannot be told (no owner recorded, or one on another host). */
  readonly alive: boolean | null;
}

/** The lock's state as the liveness check sees it now (read-only). */
export async function readLockState(dir: string): Promise<LockState> {
  const st = await stat(lockPath(dir)).catch(() => undefined);
  if (!st) return { present: false, refreshedAt: null, owner: null, alive: null };
  const recorded = await readLockOwner(dir);
  const owner = recorded !== undefined && recorded.lockIno === st.ino ? recorded : null;
  const alive = owner !== null && owner.host === hostname() ? isAlive(owner) : null;
  return { present: true, refreshedAt: st.mtimeMs, owner, alive };
}

/**
 * What a process that wants the lock does, from its state: `free` (nobody holds it),
 * `refuse-live-owner`, `take-over` (its owner is gone, or it went stale unrefreshed), or
 * `wait` (an owner that cannot be checked still refreshes it: a live one keeps it, a dead
 * one lets it go stale). A live owner's lock is never taken over, stale or not: a frozen
 * owner is refused rather than raced (DESIGN.md invariant 7).
 */
export type TakeoverDecision = 'free' | 'refuse-live-owner' | 'take-over' | 'wait';

export function decideTakeover(state: LockState, now: number): TakeoverDecision {
  if (!state.present) return 'free';
  if (state.alive === true) return 'refuse-live-owner';
  if (state.alive === false) return 'take-over';
  return state.refreshedAt !== null && now - state.refreshedAt > STALE_MS ? 'take-over' : 'wait';
}

/** For readers (`inspect`), as a process that wants the lock would see it: `held` — it would be refused or wait; `stale` — it would take it over. */
export function lockStatus(state: LockState, now: number): { readonly held: boolean; readonly stale: boolean; readonly owner: LockOwner | null } {
  const decision = decideTakeover(state, now);
  return { held: decision === 'refuse-live-owner' || decision === 'wait', stale: decision === 'take-over', owner: state.owner };
}

/** Whether the lock is there and fresh by proper-lockfile's own clock (read-only; tests use it to tell a takeover that did not wait for staleness). */
export async function isLocked(dir: string): Promise<boolean> {
  return lockfile.check(dir, { lockfilePath: lockPath(dir), stale: STALE_MS, realpath: false });
}

export async function acquireLock(dir: string, onCompromised: (err: Error) => void = () => {}): Promise<CheckpointLock> {
  await mkdir(dir, { recursive: true });
  let compromised: Error | undefined;
  const options: lockfile.LockOptions = {
    lockfilePath: lockPath(dir),
    stale: STALE_MS,
    update: UPDATE_MS,
    realpath: false,
    retries: 0,
    onCompromised: (err: Error) => {
      compromised = err;
      onCompromised(err);
    },
  };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, options);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    const state = await readLockState(dir);
    const decision = decideTakeover(state, Date.now());
    if (decision === 'refuse-live-owner') throw new CheckpointLockedError(dir, describeOwner(state.owner ?? undefined));
    if (decision === 'take-over' && state.alive === false) {
      // The recorded owner is gone (killed): take over now instead of waiting for staleness.
      await rm(lockPath(dir), { recursive: true, force: true });
    }
    // Taken over just now; or stale, which proper-lockfile takes over itself (its own
    // check, not a second remove racing another process's fresh lock); or the owner cannot
    // be checked: a process killed between creating the lock and recording itself, or one
    // on another host. A live owner refreshes the lock every second; a dead one lets it go stale.
    const wait = decision === 'wait' ? { retries: Math.ceil((STALE_MS + 3_000) / 500), minTimeout: 500, maxTimeout: 500 } : 0;
    try {
      release = await lockfile.lock(dir, { ...options, retries: wait });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === 'ELOCKED') throw new CheckpointLockedError(dir, describeOwner(await readLockOwner(dir)));
      throw again;
    }
  }
  const me: LockOwner = {
    host: hostname(), pid: process.pid, startTime: processStartTime(process.pid), since: Date.now(), lockIno: (await stat(lockPath(dir))).ino,
  };
  await writeFile(ownerPath(dir), JSON.stringify(me));
  return {
    assertHeld() {
      if (compromised) throw new LockCompromisedError(dir, compromised.message);
    },
    async release() {
      if (compromised) return;
      await rm(ownerPath(dir), { force: true });
      await release();
    },
  };
}
