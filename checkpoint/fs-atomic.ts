// Durable file replacement: write a temp file, fsync it, rename it over the target, fsync
// the directory. A reader sees the old file or the new one, never a part; after a crash
// at any point the target is either absent or complete. The temp name is fixed per target
// (one process owns a checkpoint and so its sinks), so a killed writer's leftover is
// overwritten by the next attempt instead of piling up.
//
// Every write here checks how many bytes went out. write(2) on a nearly full disk writes
// what fits and reports success with a smaller count; ignoring it once synced, renamed and
// committed a sink file cut off mid-record (tmpfs, 2026-11: 1,050 of 2,000 lines).
import { link, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A write that made no progress: the device is full (the OS reports ENOSPC on the next call; a zero count means the same). */
function noSpace(path: string, wanted: number, written: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, short write to ${path} (${written} of ${wanted} bytes)`), {
    code: 'ENOSPC', errno: -28, syscall: 'write', path,
  });
}

/** Writes all of `data` at the file's current position (or its end, for a file opened to append), or throws. */
export async function writeAll(file: FileHandle, data: string | Uint8Array, path: string): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  for (let at = 0; at < bytes.length;) {
    const { bytesWritten } = await file.write(bytes, at, bytes.length - at);
    if (bytesWritten <= 0) throw noSpace(path, bytes.length, at);
    at += bytesWritten;
  }
}

/** Writes all of `buffers`, in order, with as few calls as the OS allows, or throws. */
export async function writevAll(file: FileHandle, buffers: readonly Uint8Array[], path: string): Promise<void> {
  let rest = buffers.filter((b) => b.length > 0);
  const wanted = rest.reduce((n, b) => n + b.length, 0);
  let done = 0;
  while (rest.length > 0) {
    let { bytesWritten } = await file.writev(rest);
    if (bytesWritten <= 0) throw noSpace(path, wanted, done);
    done += bytesWritten;
    // Drop what went out; the first buffer left may be cut.
    let i = 0;
    while (i < rest.length && bytesWritten >= rest[i]!.length) bytesWritten -= rest[i++]!.length;
    rest = rest.slice(i);
    if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
  }
}

/** Up to `length` bytes at `position`: fewer only where the file ends (a read may return less than asked before that). */
export async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await file.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

type FileData = string | Uint8Array | Iterable<string>;

/** Writes `data` into `temp` and syncs it; on failure removes it (a full disk must not keep holding the space it took). */
async function writeTemp(temp: string, data: FileData): Promise<void> {
  try {
    const file = await open(temp, 'w');
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await writeAll(file, data, temp);
      else for (const piece of data) await writeAll(file, piece, temp);
      await file.sync();
    } finally {
      await file.close();
    }
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** fsync(2) of a directory: the names created or removed in it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Writes `data` — whole, or as pieces written one after the other (no copy of the whole in memory) — atomically and durably. */
export async function writeFileAtomic(path: string, data: FileData): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.tmp`);
  await writeTemp(temp, data);
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

/**
 * Publishes `data` at `path` durably unless a file is already there, which is never replaced:
 * link(2) of the synced temp file fails with EEXIST instead (rename would replace). Returns
 * false when `path` existed. `writer` names the temp file, so two writers of one target (a
 * zombie and its successor) never share one, and a killed writer's leftover is overwritten
 * by its own next attempt.
 */
export async function publishFileOnce(path: string, data: FileData, writer: string): Promise<boolean> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${writer}.tmp`);
  await writeTemp(temp, data);
  let published = true;
  try {
    await link(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    published = false;
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(dir);
  return published;
}
