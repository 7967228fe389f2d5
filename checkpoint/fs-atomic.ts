// Durable file replacement: write a temp file, fsync it, rename it over the target, fsync
// the directory. A reader sees the old file or the new one, never a part; after a crash
// at any point the target is either absent or complete. The temp name is fixed per target
// (one process owns a checkpoint and so its sinks), so a killed writer's leftover is
// overwritten by the next attempt instead of piling up.
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Writes `data` — whole, or as pieces written one after the other (no copy of the whole in memory) — atomically and durably. */
export async function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<string>): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.tmp`);
  const file = await open(temp, 'w');
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) await file.writeFile(data);
    else for (const piece of data) await file.write(piece);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
