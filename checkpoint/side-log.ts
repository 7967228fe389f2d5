// The side log: a batch's staged output chunks in a file of their own beside LevelDB,
// `<checkpoint>/staged-<batch id>.log`, which the STAGE write references instead of holding
// the chunks (DESIGN.md "Where staged outputs live").
//
// Why: a staged 64 MiB batch in one LevelDB write was held at once as the sealed chunks,
// LevelDB's write batch, its memtable and the memtable being flushed; row 3 of the
// benchmark (1 M × 200 B, Kafka → file) peaked at 639–723 MB against a goal of 228 MB.
// Here each chunk goes to the file as soon as it is encoded, so a stage holds a few MiB.
//
// The file is append-only: each chunk is stored exactly as LevelDB would have held it,
// sealed under its `out!` key (codec.ts), one after the other. A second stage of the same
// batch (the sink-rejected outputs staged again) appends, so the references of the STAGE
// already durable stay valid until the new one replaces them. Durability rule: the file
// and its directory entry are synced before the STAGE that points into it; the file is
// removed after the COMMIT, and a file of a committed batch left by a crash in between is
// removed at the next open (removeCommitted).
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJSON, ENVELOPE_BYTES, unseal } from './codec';
import { CheckpointWriteError, CorruptCheckpointError, describeCause } from './errors';
import { readAt, syncDir, writevAll } from './fs-atomic';
import type { KVOp } from './kv';

/**
 * First byte of a reference's payload. Chunk payloads start with 0x01 (columns) or 0xFF
 * (v8), so a reference and a chunk staged in LevelDB (by an older build) are told apart.
 */
export const SIDE_LOG_REF_TAG = 0x4c; // 'L'

/** Where one chunk is: the STAGE write holds this, sealed under the chunk's `out!` key. */
export interface SideLogRef {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
  /** The chunk's envelope checksum, as in the file. */
  readonly crc: number;
}

/** A chunk of outputs to stage: its `out!` key and its value sealed under that key. */
export interface SealedChunk {
  readonly key: string;
  readonly value: Uint8Array;
}

/** Bytes gathered before each write: one write in flight while the next group is encoded. */
const WRITE_BYTES = 4 << 20;
const FILE = /^staged-(\d{16})\.log$/;

export const sideLogFile = (batchId: number): string => `staged-${String(batchId).padStart(16, '0')}.log`;

export const isSideLogRef = (payload: Uint8Array): boolean => payload[0] === SIDE_LOG_REF_TAG;

function encodeRef(ref: SideLogRef): Uint8Array {
  return Buffer.concat([Buffer.of(SIDE_LOG_REF_TAG), Buffer.from(JSON.stringify(ref))]);
}

function decodeRef(payload: Uint8Array): SideLogRef {
  const ref = decodeJSON<Partial<SideLogRef>>(payload.subarray(1));
  const whole = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (typeof ref.file !== 'string' || !FILE.test(ref.file) || !whole(ref.offset) || !whole(ref.length) || ref.length < ENVELOPE_BYTES || !whole(ref.crc)) {
    throw new Error(`not a side log reference: ${JSON.stringify(ref)}`);
  }
  return ref as SideLogRef;
}

export class SideLog {
  /** Files held open for a reader of a copy (hold). */
  private readonly held = new Map<string, FileHandle>();

  constructor(readonly dir: string) {}

  /**
   * Appends the chunks, as they come, to the batch's file and syncs it and the directory:
   * on return the chunks are durable. Returns, per chunk, the put of its reference (a
   * payload for the store to seal under the chunk's key).
   */
  async append(batchId: number, chunks: Iterable<SealedChunk>): Promise<KVOp[]> {
    const file = sideLogFile(batchId);
    const path = join(this.dir, file);
    const failed = (err: unknown): never => { throw new CheckpointWriteError(this.dir, err); };
    const handle = await open(path, 'a').catch(failed);
    const refs: KVOp[] = [];
    let start: number | undefined;
    let writing: Promise<void> = Promise.resolve();
    try {
      let offset = start = (await handle.stat().catch(failed)).size;
      let group: Uint8Array[] = [];
      let groupBytes = 0;
      const flush = async (): Promise<void> => {
        await writing; // one write in flight: memory stays at about two groups
        writing = writevAll(handle, group, path).catch(failed);
        group = [];
        groupBytes = 0;
      };
      // Encoding errors (an output the codec refuses) come from `chunks` and pass through as they are.
      for (const { key, value } of chunks) {
        const crc = Buffer.from(value.buffer, value.byteOffset, value.byteLength).readUInt32LE(2);
        refs.push({ type: 'put', key, value: encodeRef({ file, offset, length: value.byteLength, crc }) });
        offset += value.byteLength;
        group.push(value);
        groupBytes += value.byteLength;
        if (groupBytes >= WRITE_BYTES) await flush();
      }
      await flush();
      await writing;
      await handle.sync().catch(failed);
      // Every time, not only when this append created the file: a killed earlier attempt may have, without the sync.
      await syncDir(this.dir).catch(failed);
    } catch (err) {
      await writing.catch(() => {});
      // Give back what this append took (a full disk): what a durable STAGE references lies before `start`.
      if (start !== undefined) await handle.truncate(start).catch(() => {});
      throw err;
    } finally {
      await handle.close();
    }
    return refs;
  }

  /** The payload of the chunk stored under `key` that `refPayload` points to, its checksum checked. */
  async read(key: string, refPayload: Uint8Array): Promise<Uint8Array> {
    let ref: SideLogRef;
    try {
      ref = decodeRef(refPayload);
    } catch (err) {
      throw new CorruptCheckpointError(this.dir, `record ${key} is damaged: ${describeCause(err)}`, { cause: err });
    }
    const where = `${ref.file} at ${ref.offset} (${ref.length} bytes), staged output ${key}`;
    const held = this.held.get(ref.file);
    let handle: FileHandle;
    try {
      handle = held ?? await open(join(this.dir, ref.file), 'r');
    } catch (err) {
      // Only the batch's COMMIT removes the file: gone, it says that COMMIT was lost (a write log cut short, an older copy restored), or the file was.
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing (the COMMIT of its batch removes it: was that COMMIT lost?)' : `cannot be read (${describeCause(err)})`;
      throw new CorruptCheckpointError(this.dir, `side log ${ref.file} ${why}: it holds staged output ${key}`, { cause: err });
    }
    try {
      // Bounds before allocating: the length comes from the checkpoint, the file may be cut short.
      const size = (await handle.stat()).size;
      if (ref.offset + ref.length > size) throw new CorruptCheckpointError(this.dir, `side log ${where} is cut short: the file has ${size} bytes`);
      const stored = await readAt(handle, ref.offset, ref.length);
      if (stored.byteLength !== ref.length) throw new CorruptCheckpointError(this.dir, `side log ${where} is cut short: read ${stored.byteLength} bytes`);
      let payload: Uint8Array;
      try {
        payload = unseal(key, stored, false);
      } catch (err) {
        throw new CorruptCheckpointError(this.dir, `side log ${where} is damaged: ${describeCause(err)}`, { cause: err });
      }
      if (stored.readUInt32LE(2) !== ref.crc) throw new CorruptCheckpointError(this.dir, `side log ${where} is not the chunk the checkpoint references (checksum 0x${stored.readUInt32LE(2).toString(16)}, referenced 0x${ref.crc.toString(16)})`);
      return payload;
    } finally {
      if (!held) await handle.close();
    }
  }

  /**
   * Opens the batch's file and keeps it open until release(), for a reader of a copy of a
   * live checkpoint (inspect): the daemon may commit the batch and remove the file before it
   * is read, and an unlinked file stays readable while open. False when it is gone already.
   */
  async hold(batchId: number): Promise<boolean> {
    const file = sideLogFile(batchId);
    try {
      this.held.set(file, await open(join(this.dir, file), 'r'));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async release(): Promise<void> {
    for (const handle of this.held.values()) await handle.close();
    this.held.clear();
  }

  /** Removes the batch's file once its COMMIT is durable (or its id is discarded). */
  async remove(batchId: number): Promise<void> {
    await rm(join(this.dir, sideLogFile(batchId)), { force: true });
  }

  /** Removes the files of batches up to `lastCommitted`: left by a crash between a COMMIT and its removal. */
  async removeCommitted(lastCommitted: number): Promise<void> {
    for (const name of await readdir(this.dir)) {
      const id = FILE.exec(name)?.[1];
      if (id !== undefined && Number(id) <= lastCommitted) await rm(join(this.dir, name), { force: true });
    }
  }
}
