// The rolling file sink: a daemon's outputs in few large files instead of one file per batch
// (fileSink makes ~70,000 files a day at 20 k records/s and maxWaitMs 50: issue 17; Spark's
// small-files complaint, apache/spark#13513). Like Flink's FileSink, a part file goes
// in-progress → finished:
//
//   <dir>/<name>/.inprogress-<part>.frames     batches appended as frames, fsynced per batch
//   <dir>/<name>/part-<part>-<first>-<last>.jsonl[.gz]   finished: outputs only, never changed
//
// A frame is a 40-byte header (magic, batch id, body length, time, body and header CRC-32C)
// and the batch's lines. A redelivery finds its batch id at or below the last id the part
// holds (in-progress frames, or the finished names) and does nothing; on open an in-progress
// file is cut back to its last complete frame, so a write killed half-way leaves nothing.
// A part rolls by size (after the frame that reaches maxPartBytes) and by age (before the
// next write, or on a timer while idle): its bodies are copied to a temp file (gzipped
// when asked), fsynced, renamed into place; then the in-progress file is removed. A crash
// between the rename and the removal leaves an in-progress file whose ids a finished name
// already covers: it is removed on open. Readers list only `part-*` files (docs/sinks.md).
import { mkdir, open, readdir, rename, rm, stat, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { crc32c } from '../../checkpoint/crc32c';
import { readAt, writeAll, writevAll } from '../../checkpoint/fs-atomic';
import type { Sink, SinkBatch } from '../contracts';
import { claim, lines, unwritable } from './file';

export interface RollingFileSinkOptions<T> {
  readonly dir: string;
  /** Stable sink name (default `rolling`); also the sub-directory. */
  readonly name?: string;
  /** A part file is finished after the batch that brings it to this size (default 128 MiB). */
  readonly maxPartBytes?: number;
  /** …or once it is this old (default 15 minutes), even while no batch comes. */
  readonly maxPartAgeMs?: number;
  /** Gzip finished part files (`.jsonl.gz`). */
  readonly gzip?: boolean;
  /** One line per output (default JSON.stringify). */
  readonly format?: (output: T) => string;
  /**
   * Which part file an output goes to (letters, digits, `.`, `_`, `-` are kept; anything else
   * is %-encoded). Default: `all`.
   */
  readonly partBy?: (output: T) => string | number;
}

const MAGIC = 0x544d4631; // "TMF1"
const HEADER_BYTES = 40;
const FINISHED = /^part-(.+)-(\d{12})-(\d{12})\.jsonl(\.gz)?$/;
const READ_PIECE = 1 << 20;

interface Frame {
  readonly id: number;
  /** Where its body starts in the in-progress file. */
  readonly body: number;
  readonly length: number;
}

interface InProgress {
  readonly file: FileHandle;
  readonly path: string;
  size: number;
  /** When its first frame was written (ms since the epoch): the age that rolls it. */
  readonly startedAt: number;
  readonly frames: Frame[];
}

interface Part {
  readonly key: string;
  /** The last batch id this part holds, in a finished file or in progress (0: none). */
  lastId: number;
  current: InProgress | undefined;
}

/** The finished file name of part `key` holding batches `first` … `last`: ids padded so names sort in order. */
export function finishedPartName(key: string, first: number, last: number, gzip: boolean): string {
  const pad = (n: number): string => String(n).padStart(12, '0');
  return `part-${key}-${pad(first)}-${pad(last)}.jsonl${gzip ? '.gz' : ''}`;
}

function encodeHeader(id: number, length: number, at: number, bodyCrc: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(MAGIC, 0);
  h.writeDoubleBE(id, 8);
  h.writeDoubleBE(length, 16);
  h.writeDoubleBE(at, 24);
  h.writeUInt32BE(bodyCrc, 32);
  h.writeUInt32BE(crc32c(h.subarray(8)), 4);
  return h;
}

function decodeHeader(h: Buffer): { id: number; length: number; at: number; bodyCrc: number } | undefined {
  if (h.length < HEADER_BYTES || h.readUInt32BE(0) !== MAGIC || h.readUInt32BE(4) !== crc32c(h.subarray(8, HEADER_BYTES))) return undefined;
  const id = h.readDoubleBE(8);
  const length = h.readDoubleBE(16);
  if (!Number.isSafeInteger(id) || id < 1 || !Number.isSafeInteger(length) || length < 0) return undefined;
  return { id, length, at: h.readDoubleBE(24), bodyCrc: h.readUInt32BE(32) };
}

/** The complete frames of an in-progress file, in order, and where the last one ends. */
async function scanFrames(file: FileHandle, size: number): Promise<{ frames: Frame[]; end: number; startedAt: number | undefined }> {
  const frames: Frame[] = [];
  let at = 0;
  let startedAt: number | undefined;
  while (at + HEADER_BYTES <= size) {
    const header = decodeHeader(await readAt(file, at, HEADER_BYTES));
    if (!header || at + HEADER_BYTES + header.length > size) break;
    let crc = 0;
    for (let off = 0; off < header.length; off += READ_PIECE) {
      crc = crc32c(await readAt(file, at + HEADER_BYTES + off, Math.min(READ_PIECE, header.length - off)), crc);
    }
    if (crc !== header.bodyCrc || (frames.length > 0 && header.id <= frames[frames.length - 1]!.id)) break;
    startedAt ??= header.at;
    frames.push({ id: header.id, body: at + HEADER_BYTES, length: header.length });
    at += HEADER_BYTES + header.length;
  }
  return { frames, end: at, startedAt };
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

function partKey(value: string | number): string {
  return encodeURIComponent(String(value)).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function rollingFileSink<T>(options: RollingFileSinkOptions<T>): Sink<T> {
  const name = options.name ?? 'rolling';
  const format = options.format ?? ((o: T) => JSON.stringify(o));
  const dir = join(options.dir, name);
  const maxPartBytes = options.maxPartBytes ?? 128 * 1024 * 1024;
  const maxPartAgeMs = options.maxPartAgeMs ?? 15 * 60_000;
  const gzip = options.gzip === true;
  let claimed: string | undefined;
  /** The last batch id of each part's finished files, from the listing made at the first write. */
  let finishedUpTo: Map<string, number> | undefined;
  const parts = new Map<string, Part>();
  let timer: NodeJS.Timeout | undefined;
  // One thing at a time: writes and the idle roll both move a part's files.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <R>(work: () => Promise<R>): Promise<R> => {
    const result = queue.then(work);
    queue = result.catch(() => undefined);
    return result;
  };

  const inProgressPath = (key: string): string => join(dir, `.inprogress-${key}.frames`);

  async function list(): Promise<Map<string, number>> {
    await mkdir(dir, { recursive: true });
    const upTo = new Map<string, number>();
    for (const f of await readdir(dir)) {
      const m = FINISHED.exec(f);
      if (m) upTo.set(m[1]!, Math.max(upTo.get(m[1]!) ?? 0, Number(m[3])));
      else if (f.startsWith('.part-') && f.endsWith('.tmp')) await rm(join(dir, f), { force: true }); // a finish cut short
    }
    return upTo;
  }

  /** The part's state: its finished ids, and its in-progress file cut back to the last complete frame. */
  async function partOf(key: string): Promise<Part> {
    let part = parts.get(key);
    if (part) return part;
    finishedUpTo ??= await list();
    const finished = finishedUpTo.get(key) ?? 0;
    part = { key, lastId: finished, current: undefined };
    const path = inProgressPath(key);
    if (!(await stat(path).catch(() => undefined))) {
      parts.set(key, part);
      return part;
    }
    let file: FileHandle | undefined;
    try {
      file = await open(path, 'a+');
      const size = (await file.stat()).size;
      const { frames, end, startedAt } = await scanFrames(file, size);
      const last = frames[frames.length - 1]?.id ?? 0;
      if (frames.length === 0 || last <= finished) {
        // Empty, or finished already (a crash between the finished file's rename and this file's removal).
        await file.close();
        file = undefined;
        await rm(path, { force: true });
      } else {
        if (end < size) {
          await truncate(path, end);
          await file.sync();
        }
        part.lastId = last;
        part.current = { file, path, size: end, startedAt: startedAt!, frames };
      }
    } catch (err) {
      await file?.close();
      throw err;
    }
    parts.set(key, part);
    return part;
  }

  async function append(part: Part, id: number, body: Buffer[]): Promise<void> {
    const length = body.reduce((n, b) => n + b.length, 0);
    const crc = body.reduce((c, b) => crc32c(b, c), 0);
    let current = part.current;
    if (!current) {
      const path = inProgressPath(part.key);
      current = { file: await open(path, 'a+'), path, size: 0, startedAt: Date.now(), frames: [] };
      part.current = current;
      await syncDir(dir); // the new file's name must survive a power loss once the batch counts as delivered
    }
    const at = current.size;
    try {
      await writevAll(current.file, [encodeHeader(id, length, Date.now(), crc), ...body], current.path);
      await current.file.datasync();
    } catch (err) {
      // Leave no torn frame behind for the retry to append after.
      await truncate(current.path, at).catch(() => undefined);
      throw err;
    }
    current.frames.push({ id, body: at + HEADER_BYTES, length });
    current.size = at + HEADER_BYTES + length;
    part.lastId = id;
  }

  async function* bodies(current: InProgress): AsyncGenerator<Buffer> {
    for (const f of current.frames) {
      for (let off = 0; off < f.length; off += READ_PIECE) yield await readAt(current.file, f.body + off, Math.min(READ_PIECE, f.length - off));
    }
  }

  /** In-progress → finished: the bodies into a temp file, fsync, rename into place; then the in-progress file goes. */
  async function finish(part: Part): Promise<void> {
    const current = part.current;
    if (!current || current.frames.length === 0) return; // nothing yet (a first frame whose write failed)
    const final = finishedPartName(part.key, current.frames[0]!.id, current.frames[current.frames.length - 1]!.id, gzip);
    const temp = join(dir, `.${final}.tmp`);
    const out = await open(temp, 'w');
    try {
      const write = async (source: AsyncIterable<Buffer>): Promise<void> => {
        for await (const chunk of source) await writeAll(out, chunk, temp);
      };
      if (gzip) await pipeline(Readable.from(bodies(current)), createGzip(), write);
      else await write(bodies(current));
      await out.sync();
      await out.close();
      await rename(temp, join(dir, final));
    } catch (err) {
      await out.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
    await syncDir(dir);
    part.current = undefined;
    await current.file.close();
    await rm(current.path, { force: true });
  }

  const old = (current: InProgress | undefined): boolean => current !== undefined && Date.now() - current.startedAt >= maxPartAgeMs;

  function startTimer(): void {
    if (timer) return;
    // An idle daemon still finishes its parts on time, so readers see the last outputs.
    timer = setInterval(() => {
      void serial(async () => {
        for (const part of parts.values()) if (old(part.current)) await finish(part);
      }).catch(() => undefined); // the next write finishes it again, and reports what fails
    }, Math.max(50, Math.min(60_000, Math.floor(maxPartAgeMs / 4))));
    timer.unref();
  }

  return {
    name,
    write(batch: SinkBatch<T>) {
      return serial(async () => {
        if (batch.checkpoint !== claimed) {
          await claim(dir, name, batch);
          claimed = batch.checkpoint; // checked once per process, not per batch
        }
        // Every line is formatted before anything is written: a rejection writes nothing.
        const byPart = new Map<string, T[]>();
        for (const o of batch.outputs) {
          const key = options.partBy ? partKey(options.partBy(o)) : 'all';
          let list = byPart.get(key);
          if (!list) byPart.set(key, (list = []));
          list.push(o);
        }
        const bodiesByPart = [...byPart].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, outputs]) => {
          const body = [...lines(outputs, format, () => unwritable(name, batch.id, batch.outputs, format, 0))].map((s) => Buffer.from(s));
          return [key, body] as const;
        });
        for (const [key, body] of bodiesByPart) {
          const part = await partOf(key);
          if (batch.id <= part.lastId) continue; // its frame is there already: a redelivery
          if (old(part.current)) await finish(part);
          await append(part, batch.id, body);
          if (part.current!.size >= maxPartBytes) await finish(part);
        }
        startTimer();
      });
    },
    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await serial(async () => {
        for (const part of parts.values()) await part.current?.file.close();
        parts.clear();
        finishedUpTo = undefined;
      });
    },
  };
}
