// The embedded log: a partitioned append-only log on local disk, so a job runs with no
// broker. Offsets are dense from 0.
//
//   <dir>/log.json        { format, topic, partitions }
//   <dir>/<p>.log         records, back to back: [keyLen u32][key][valueLen u32][value][timestamp f64]
//   <dir>/<p>.idx         one f64 per offset: the end position of that record in <p>.log
//   <dir>/<p>.start       the log start (earliest offset) after `trim`; absent = 0
//   <dir>/head            a new random token after every append and trim (see EmbeddedLog.heads)
//
// The index is the commit point: an append writes and fsyncs the records, then the
// index entries. Readers trust only whole index entries, so they never see a torn
// append; the next appender cuts any tail a crash left behind, and an append that fails
// (a full disk: every write checks its byte count) cuts its own before it throws. Appends
// from several processes take a lock; readers need none.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as lockfile from 'proper-lockfile';
import { BadConfigError } from '../../checkpoint/errors';
import { LogWriteError } from '../errors';
import { isWholeNumber, partitionKey } from '../../checkpoint/model';
import type { OffsetMap, PartitionRef, Range, Source, SourceChunk, SourceRecord } from '../contracts';
import { sourceChunk } from './chunk';
import { writeAll, writeFileAtomic, writevAll } from '../../checkpoint/fs-atomic';

const NULL_LEN = 0xffffffff;
const ENTRY = 8;
/** A record's bytes in <p>.log besides its key and value: the two lengths and the timestamp. */
const FRAME_BYTES = 4 + 4 + 8;

/**
 * How long `heads()` may trust an unchanged head token before it looks at every partition
 * anyway: a safety net for an appender that did not rewrite it (a build from before
 * 2026-11-30, a failed head write and a failed delete). Long, because a full look is what
 * an idle poll now avoids: ~0.5 s of CPU over 10,000 partitions (2026-11-30).
 */
export const FULL_CHECK_MS = 5 * 60_000;

/** The first and next offsets of every partition, by partition number. */
export interface LogHeads {
  readonly starts: readonly number[];
  readonly ends: readonly number[];
}

export interface AppendRecord {
  readonly value: string | Buffer | null;
  readonly key?: string | Buffer | null;
  /** Default: by key hash, else round robin. */
  readonly partition?: number;
  readonly timestamp?: number;
}

interface LogMeta {
  readonly format: 1;
  readonly topic: string;
  readonly partitions: number;
}

const toBuffer = (v: string | Buffer | null | undefined): Buffer | null => (v === null || v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v);

function hashKey(key: Buffer): number {
  let h = 2166136261;
  for (const byte of key) h = Math.imul(h ^ byte, 16777619);
  return h >>> 0;
}

export class EmbeddedLog {
  private roundRobin = Math.floor(Math.random() * 1024);
  private known: { readonly token: string; readonly at: number; readonly heads: Promise<LogHeads> } | undefined;

  private constructor(readonly dir: string, readonly topic: string, readonly partitions: number) {}

  /** Opens the log in `dir`, creating it with `partitions` (default 4) when absent. */
  static async open(dir: string, options: { topic?: string; partitions?: number; create?: boolean } = {}): Promise<EmbeddedLog> {
    const metaPath = join(dir, 'log.json');
    if (!existsSync(metaPath)) {
      if (options.create === false) throw new BadConfigError(`There is no embedded log in ${dir}. Create one with \`tidemark log create ${dir}\` or append to it.`);
      const partitions = options.partitions ?? 4;
      if (!isWholeNumber(partitions, 1)) throw new BadConfigError(`An embedded log needs at least one partition; got ${partitions}.`);
      await mkdir(dir, { recursive: true });
      const meta: LogMeta = { format: 1, topic: options.topic ?? 'events', partitions };
      await writeFileAtomic(metaPath, JSON.stringify(meta));
    }
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as LogMeta;
    if (options.topic !== undefined && options.topic !== meta.topic) {
      throw new BadConfigError(`The embedded log in ${dir} holds topic ${meta.topic}, not ${options.topic}.`);
    }
    return new EmbeddedLog(dir, meta.topic, meta.partitions);
  }

  /**
   * Every partition's start and end, for the source's polls. Looking at every partition's
   * files on each poll cost an idle daemon over 10,000 partitions most of a core (2026-11);
   * instead one small `head` file, rewritten with a new token by every append and trim after
   * its data is durable, says whether anything changed. The token is read before the files,
   * so a change that lands during the look changes the token again and is seen next time.
   */
  async heads(): Promise<LogHeads> {
    const token = await readFile(join(this.dir, 'head'), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return 'absent';
      throw err;
    });
    const now = Date.now();
    if (this.known && this.known.token === token && now - this.known.at < FULL_CHECK_MS) return this.known.heads;
    const parts = Array.from({ length: this.partitions }, (_, p) => p);
    const heads = Promise.all([Promise.all(parts.map((p) => this.start(p))), Promise.all(parts.map((p) => this.end(p)))])
      .then(([starts, ends]) => ({ starts, ends }));
    this.known = { token, at: now, heads };
    heads.catch(() => {
      if (this.known?.heads === heads) this.known = undefined; // a failed look is not remembered
    });
    return heads;
  }

  /** A new head token: readers look at the partitions again. Never throws: the append or trim is done. */
  private async touchHead(): Promise<void> {
    const head = join(this.dir, 'head');
    try {
      await writeFile(`${head}.tmp`, randomUUID());
      await rename(`${head}.tmp`, head);
    } catch {
      // Without a head the readers' token is 'absent', a change too; failing that, FULL_CHECK_MS.
      await Promise.all([rm(head, { force: true }), rm(`${head}.tmp`, { force: true })]).catch(() => undefined);
    }
  }

  private file(partition: number, ext: 'log' | 'idx' | 'start'): string {
    return join(this.dir, `${partition}.${ext}`);
  }

  private checkPartition(partition: number): void {
    if (!isWholeNumber(partition) || partition >= this.partitions) {
      throw new BadConfigError(`Partition ${partition} does not exist in the embedded log ${this.dir} (it has ${this.partitions}).`);
    }
  }

  /** The next offset to be written (Kafka's "latest"). */
  async end(partition: number): Promise<number> {
    try {
      return Math.floor((await stat(this.file(partition, 'idx'))).size / ENTRY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }

  /** The first offset still in the log (Kafka's "earliest"). */
  async start(partition: number): Promise<number> {
    try {
      return Number(await readFile(this.file(partition, 'start'), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }

  /** Forgets offsets below `before`, as retention would (for tests of the data-loss policy). */
  async trim(partition: number, before: number): Promise<void> {
    this.checkPartition(partition);
    await writeFileAtomic(this.file(partition, 'start'), String(Math.min(before, await this.end(partition))));
    await this.touchHead();
  }

  /** Appends records durably; returns the offset given to each, in order. */
  async append(records: readonly AppendRecord[]): Promise<Array<{ partition: number; offset: number }>> {
    const byPartition = new Map<number, Buffer[]>();
    const placed: Array<{ partition: number; index: number }> = [];
    for (const r of records) {
      const key = toBuffer(r.key);
      const partition = r.partition ?? (key ? hashKey(key) % this.partitions : this.roundRobin++ % this.partitions);
      this.checkPartition(partition);
      const value = toBuffer(r.value);
      const buf = Buffer.allocUnsafe(FRAME_BYTES + (key?.length ?? 0) + (value?.length ?? 0));
      let at = buf.writeUInt32LE(key ? key.length : NULL_LEN, 0);
      if (key) at += key.copy(buf, at);
      at = buf.writeUInt32LE(value ? value.length : NULL_LEN, at);
      if (value) at += value.copy(buf, at);
      buf.writeDoubleLE(r.timestamp ?? Date.now(), at);
      const list = byPartition.get(partition) ?? [];
      placed.push({ partition, index: list.length });
      list.push(buf);
      byPartition.set(partition, list);
    }
    const release = await lockfile.lock(this.dir, {
      lockfilePath: join(this.dir, 'append.lock'), realpath: false, stale: 10_000, retries: { retries: 100, minTimeout: 5, maxTimeout: 100 },
    });
    const firstOffset = new Map<number, number>();
    const offsets = (): Array<{ partition: number; offset: number } | undefined> => placed.map(({ partition, index }) => {
      const first = firstOffset.get(partition);
      return first === undefined ? undefined : { partition, offset: first + index };
    });
    try {
      for (const [partition, bufs] of byPartition) firstOffset.set(partition, await this.appendToPartition(partition, bufs));
    } catch (err) {
      // Partitions written before the failure are durable (a reader may have seen them): they stay, and the error says which.
      throw new LogWriteError(this.dir, err, offsets());
    } finally {
      await this.touchHead(); // also after a failure: the partitions written before it are durable
      await release();
    }
    return offsets() as Array<{ partition: number; offset: number }>;
  }

  private async appendToPartition(partition: number, records: Buffer[]): Promise<number> {
    const log = await open(this.file(partition, 'log'), 'a+');
    const idx = await open(this.file(partition, 'idx'), 'a+');
    try {
      const count = Math.floor((await idx.stat()).size / ENTRY);
      let end = 0;
      if (count > 0) {
        const last = Buffer.alloc(ENTRY);
        await idx.read(last, 0, ENTRY, (count - 1) * ENTRY);
        end = last.readDoubleLE(0);
      }
      // Cut what a crashed append left behind: bytes past the last indexed record, a torn entry.
      await log.truncate(end);
      await idx.truncate(count * ENTRY);
      const entries = Buffer.allocUnsafe(records.length * ENTRY);
      let pos = end;
      records.forEach((r, i) => {
        pos += r.length;
        entries.writeDoubleLE(pos, i * ENTRY);
      });
      try {
        await writevAll(log, records, this.file(partition, 'log'));
        await log.sync();
        await writeAll(idx, entries, this.file(partition, 'idx'));
        await idx.sync();
      } catch (err) {
        // A short write (a full disk) must leave the log as it was: without this, index entries
        // that fit pointed past the records that did not, which read back empty (2026-11).
        await idx.truncate(count * ENTRY).catch(() => undefined);
        await log.truncate(end).catch(() => undefined);
        throw err;
      }
      return count;
    } finally {
      await Promise.all([log.close(), idx.close()]);
    }
  }

  /** Reads `[from, until)` of a partition in chunks of at most `chunk` records. */
  async *read(partition: number, from: number, until: number, chunk = 10_000): AsyncIterable<SourceChunk> {
    this.checkPartition(partition);
    if (from >= until) return;
    const [start, end] = [await this.start(partition), await this.end(partition)];
    if (from < start || until > end) {
      throw new Error(`embedded log ${this.topic}/${partition} holds offsets [${start}, ${end}), not [${from}, ${until})`);
    }
    const log = await open(this.file(partition, 'log'), 'r');
    const idx = await open(this.file(partition, 'idx'), 'r');
    try {
      for (let o = from; o < until; o += chunk) {
        const last = Math.min(until, o + chunk);
        // Entries o-1 .. last-1 give the byte span of records o .. last-1.
        const first = Math.max(0, o - 1);
        const entries = Buffer.alloc((last - first) * ENTRY);
        await idx.read(entries, 0, entries.length, first * ENTRY);
        const begin = o === 0 ? 0 : entries.readDoubleLE(0);
        const finish = entries.readDoubleLE(entries.length - ENTRY);
        const bytes = Buffer.alloc(finish - begin);
        await log.read(bytes, 0, bytes.length, begin);
        const records: SourceRecord[] = [];
        let at = 0;
        for (let offset = o; offset < last; offset++) {
          const keyLen = bytes.readUInt32LE(at);
          at += 4;
          const key = keyLen === NULL_LEN ? null : bytes.subarray(at, (at += keyLen));
          const valueLen = bytes.readUInt32LE(at);
          at += 4;
          const value = valueLen === NULL_LEN ? null : bytes.subarray(at, (at += valueLen));
          const timestamp = bytes.readDoubleLE(at);
          at += 8;
          records.push({ topic: this.topic, partition, offset, key, value, timestamp });
        }
        yield sourceChunk(records, bytes.length - (last - o) * FRAME_BYTES); // keys and values: the span less each record's frame
      }
    } finally {
      await Promise.all([log.close(), idx.close()]);
    }
  }
}

export interface EmbeddedLogSourceOptions {
  readonly dir: string;
  /** The log's topic name (default `events`); part of the source id stored in the checkpoint. */
  readonly topic?: string;
  /** Partitions when the log is created (default 4). */
  readonly partitions?: number;
  /** Where partitions new to the checkpoint start (default `earliest`). */
  readonly startingOffsets?: 'earliest' | 'latest';
  /** Records to append when the log is empty (demos). */
  readonly seedIfEmpty?: () => readonly AppendRecord[] | Promise<readonly AppendRecord[]>;
}

export function embeddedLogSource(options: EmbeddedLogSourceOptions): Source & { log(): Promise<EmbeddedLog> } {
  const topic = options.topic ?? 'events';
  let opened: Promise<EmbeddedLog> | undefined;
  const log = (): Promise<EmbeddedLog> => (opened ??= (async () => {
    const create = { topic, ...(options.partitions ? { partitions: options.partitions } : {}) };
    if (options.seedIfEmpty && !existsSync(join(options.dir, 'log.json'))) {
      // A new log is seeded aside and moved into place whole: a kill while seeding leaves
      // no log (seeded again on restart), never a log with only some partitions seeded.
      const aside = `${options.dir}.seeding`;
      await rm(aside, { recursive: true, force: true });
      await (await EmbeddedLog.open(aside, create)).append(await options.seedIfEmpty());
      await rename(aside, options.dir).catch(() => rm(aside, { recursive: true, force: true })); // dir not empty: seed in place below
    }
    const l = await EmbeddedLog.open(options.dir, create);
    if (options.seedIfEmpty) {
      const ends = await Promise.all(Array.from({ length: l.partitions }, (_, p) => l.end(p)));
      if (ends.every((e) => e === 0)) await l.append(await options.seedIfEmpty());
    }
    return l;
  })());
  // The same answer object while nothing changed: the engine then skips planning an idle poll.
  let last: { parts: readonly PartitionRef[]; heads: LogHeads; earliest?: OffsetMap; latest?: OffsetMap } | undefined;
  const offsets = async (parts: readonly PartitionRef[], which: 'earliest' | 'latest'): Promise<OffsetMap> => {
    const heads = await (await log()).heads();
    const prev = last;
    const same = prev !== undefined && prev.heads === heads && prev.parts.length === parts.length && parts.every((p, i) => p === prev.parts[i]);
    const answers = same ? prev : (last = { parts, heads });
    const values = which === 'earliest' ? heads.starts : heads.ends;
    return (answers[which] ??= Object.fromEntries(parts.map((p) => [partitionKey(p), values[p.partition] ?? 0])));
  };
  let all: readonly PartitionRef[] | undefined;
  return {
    id: `embedded:${topic}`,
    log,
    async partitions() {
      const l = await log();
      return [...(all ??= Array.from({ length: l.partitions }, (_, partition) => ({ topic, partition })))];
    },
    offsets,
    startingOffsets: (parts) => offsets(parts, options.startingOffsets ?? 'earliest'),
    async *read(ranges: readonly Range[]) {
      const l = await log();
      for (const r of ranges) yield* l.read(r.partition, r.from, r.until);
    },
    async close() {},
  };
}
