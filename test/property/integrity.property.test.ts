// DESIGN.md invariant 8: a stored record reads back exactly as written, or the run stops
// with the corrupt-checkpoint code. A checkpoint with every kind of record (meta, state,
// committed batches, a lost range, a STAGED batch in flight with column and v8 chunks) is
// written with the store API; each run damages one stored value (flipped bits, or a
// truncation), as a bad sector or a torn copy would, and runs the engine on it. Before
// the envelope, one flipped bit changed 20 delivered outputs, or moved a position from 10
// to 30 and skipped 20 records. Both places staged outputs live are damaged: chunks in
// LevelDB (as a build before the side log staged them) and the side log file that the
// STAGE's references point into (checkpoint/side-log.ts).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { ExitCode, isTidemarkError } from '../../checkpoint/errors';
import type { KV, KVOp } from '../../checkpoint/kv';
import type { BatchRecord, CheckpointMeta, OffsetMap, Range } from '../../checkpoint/model';
import { SideLog } from '../../checkpoint/side-log';
import { CheckpointStore, FORMAT_VERSION } from '../../checkpoint/store';
import { defineJob, Engine, type Sink, type SinkBatch, type SourceRecord } from 'tidemark';
import { MemoryLog } from '../support/memory-source';
import { tempDir } from '../support/tmp';
import { propertyParams } from './params';

type Layout = 'in LevelDB' | 'in the side log';
const root = tempDir('tidemark-integrity-');
let dirs = 0;

/** The LevelDB values and the side log files of one checkpoint. */
interface Stored {
  readonly kv: MapKV;
  readonly files: ReadonlyMap<string, Uint8Array>;
}

/** A store over `stored`, in a fresh directory holding its side log files (none when the layout stages in LevelDB). */
function storeOver(stored: Stored, layout: Layout): CheckpointStore {
  const dir = join(root, `cp${++dirs}`);
  mkdirSync(dir);
  for (const [name, bytes] of stored.files) writeFileSync(join(dir, name), bytes);
  return new CheckpointStore(stored.kv, dir, { chunkSize: CHUNK, ...(layout === 'in the side log' ? { sideLog: new SideLog(dir) } : {}) });
}

/** The stored values themselves, as LevelDB hands them back. */
class MapKV implements KV {
  constructor(readonly values = new Map<string, Uint8Array>()) {}
  async get(key: string): Promise<Uint8Array | undefined> {
    return this.values.get(key);
  }
  async write(ops: readonly KVOp[]): Promise<void> {
    for (const op of ops) {
      if (op.type === 'put') this.values.set(op.key, Uint8Array.from(op.value));
      else this.values.delete(op.key);
    }
  }
  async *entries(range: { gte: string; lt: string }): AsyncIterable<[string, Uint8Array]> {
    for (const k of [...this.values.keys()].filter((k) => k >= range.gte && k < range.lt).sort()) yield [k, this.values.get(k)!];
  }
  async close(): Promise<void> {}
  clone(): MapKV {
    return new MapKV(new Map([...this.values].map(([k, v]) => [k, Uint8Array.from(v)])));
  }
}

class RecordingSink implements Sink<unknown> {
  readonly writes: Array<{ id: number; outputs: unknown[] }> = [];
  constructor(readonly name: string) {}
  async write(batch: SinkBatch<unknown>): Promise<void> {
    this.writes.push({ id: batch.id, outputs: [...batch.outputs] });
  }
}

const CHUNK = 2;
const range = (partition: number, from: number, until: number): Range => ({ topic: 't', partition, from, until });
const text = (ranges: readonly Range[]): string[] => ranges.flatMap((r) => Array.from({ length: r.until - r.from }, (_, i) => `${r.partition}:${r.from + i}`));

function source(): MemoryLog {
  const log = new MemoryLog('t', 2);
  log.append(0, 16);
  log.append(1, 13);
  return log;
}

/** Batches 1–3 committed (batch 1 skipped t/1 [0, 2) as lost), batch 4 staged in flight. */
async function writeCheckpoint(layout: Layout): Promise<Stored> {
  const kv = new MapKV();
  const store = storeOver({ kv, files: new Map() }, layout);
  const meta: CheckpointMeta = {
    format: FORMAT_VERSION, job: 'integrity', source: source().id, sinks: ['out'], fingerprint: 'v1',
    fingerprints: [{ fingerprint: 'v1', since: 1, note: 'first run' }], resets: [], createdAt: 1,
  };
  await store.writeMeta(meta);
  const batches: Array<{ ranges: Range[]; lost?: Range[] }> = [
    { ranges: [range(0, 0, 3), range(1, 2, 4)], lost: [range(1, 0, 2)] },
    { ranges: [range(0, 3, 6), range(1, 4, 6)] },
    { ranges: [range(0, 6, 9), range(1, 6, 8)] },
  ];
  let positions: OffsetMap = {};
  for (const [i, b] of batches.entries()) {
    const planned: BatchRecord = { id: i + 1, state: 'planned', ranges: b.ranges, fingerprint: 'v1', plannedAt: 1 };
    await store.planBatch(planned);
    const staged = await store.stageBatch(planned, { outputs: text(b.ranges) });
    positions = { ...positions, ...Object.fromEntries(b.ranges.map((r) => [`t/${r.partition}`, r.until])) };
    await store.commitBatch(staged, positions, b.lost);
  }
  const inFlight: BatchRecord = { id: 4, state: 'planned', ranges: [range(0, 9, 12), range(1, 8, 10)], fingerprint: 'v1', plannedAt: 1 };
  await store.planBatch(inFlight);
  // Chunks of strings (the column layout), of mixed shapes (v8), and of records with a bigint column.
  const [a, b, c, d, e] = text(inFlight.ranges);
  await store.stageBatch(inFlight, { outputs: [a, b, c, { late: d }, { o: e, n: 2n ** 64n }] });
  return { kv, files: new Map(readdirSync(store.dir).map((name) => [name, readFileSync(join(store.dir, name))])) };
}

interface Outcome {
  readonly writes: RecordingSink['writes'];
  readonly error?: unknown;
  readonly positions?: OffsetMap;
  /** What inspect lists: every batch record and lost range, or the error reading them. */
  readonly listed?: unknown;
}

async function run(stored: Stored, layout: Layout): Promise<Outcome> {
  const sink = new RecordingSink('out');
  const job = defineJob<unknown>({
    name: 'integrity', source: source(), sinks: [sink],
    transform: (records: SourceRecord[]) => records.map((r) => `${r.partition}:${r.offset}`),
    batch: { maxRecordsPerPartition: 3, minRecords: 1, maxWaitMs: 0 },
    checkpoint: { retainBatches: 100 },
    onDataLoss: 'fail',
  });
  const store = storeOver(stored, layout);
  try {
    await new Engine(job, { store, fingerprint: 'v1' }).run({ once: true, maxBatches: 100 });
  } catch (error) {
    return { writes: sink.writes, error };
  }
  const listed = await Promise.all([store.batches(), store.lostRanges()]).catch((error: unknown) => ({ error }));
  return { writes: sink.writes, positions: (await store.load()).positions, listed };
}

type Damage = { kind: 'flip'; bits: number[] } | { kind: 'truncate'; to: number };

function damage(value: Uint8Array, how: Damage): Uint8Array {
  const out = Uint8Array.from(value);
  if (how.kind === 'truncate') return out.subarray(0, how.to % value.length);
  for (const bit of new Set(how.bits.map((b) => b % (value.length * 8)))) out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

const isCorrupt = (err: unknown): boolean =>
  isTidemarkError(err) && err.code === 'TIDEMARK_CORRUPT_CHECKPOINT' && err.exitCode === ExitCode.corruptCheckpoint;

/** A side log file is named `file:<name>` among the LevelDB keys it is damaged beside. */
const FILE = 'file:';

describe.each<Layout>(['in LevelDB', 'in the side log'])('invariant 8: integrity, staged outputs %s — a damaged stored record stops the run (exit 7) or reads back exactly; no damaged byte reaches a sink or a position', (layout) => {
  let fixture: Stored;
  let reference: Outcome;
  let keys: string[];
  const clone = (): { kv: MapKV; files: Map<string, Uint8Array> } => ({ kv: fixture.kv.clone(), files: new Map(fixture.files) });
  beforeAll(async () => {
    fixture = await writeCheckpoint(layout);
    keys = [...fixture.kv.values.keys(), ...[...fixture.files.keys()].map((name) => FILE + name)].sort();
    reference = await run(clone(), layout);
  });

  it('the undamaged checkpoint continues exactly: batch 4 as staged, then every offset once, to the end of the log', () => {
    expect(reference.error).toBeUndefined();
    expect(reference.writes[0]).toEqual({ id: 4, outputs: ['0:9', '0:10', '0:11', { late: '1:8' }, { o: '1:9', n: 2n ** 64n }] });
    expect(reference.writes.slice(1).flatMap((w) => w.outputs).sort()).toEqual([...text([range(0, 12, 16), range(1, 10, 13)])].sort());
    expect(reference.positions).toEqual({ 't/0': 16, 't/1': 13 });
    // Every kind of record is there to be damaged.
    expect(keys.map((k) => k.split('!')[0])).toEqual(expect.arrayContaining(['meta', 'state', 'batch', 'out', 'lost']));
    const staged = new Set(keys.filter((k) => k.startsWith('out!')).map((k) => fixture.kv.values.get(k)![6]));
    if (layout === 'in LevelDB') {
      expect(staged).toEqual(new Set([0x01, 0xff]));
      expect([...fixture.files.keys()]).toEqual([]);
    } else {
      // References in LevelDB; the chunks, column and v8 ones, in the batch in flight's file alone (the commits removed the others').
      expect(staged).toEqual(new Set([0x4c]));
      expect([...fixture.files.keys()]).toEqual(['staged-0000000000000004.log']);
      expect(fixture.files.get('staged-0000000000000004.log')!.length).toBeGreaterThan(100);
    }
  });

  it('holds for flipped bits and truncations of every kind of record', async () => {
    const seen = new Map<string, { corrupt: number; exact: number }>();
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), bits: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }) }),
          fc.record({ kind: fc.constant('truncate' as const), to: fc.nat() }),
        ),
        async (pick, how) => {
          const key = keys[pick % keys.length]!;
          const stored = clone();
          if (key.startsWith(FILE)) stored.files.set(key.slice(FILE.length), damage(stored.files.get(key.slice(FILE.length))!, how));
          else stored.kv.values.set(key, damage(stored.kv.values.get(key)!, how));
          const outcome = await run(stored, layout);
          // No wrong output: whatever reached the sink is what the undamaged run delivered.
          expect(outcome.writes).toEqual(reference.writes.slice(0, outcome.writes.length));
          const kind = key.startsWith(FILE) ? 'file' : key.split('!')[0]!;
          const tally = seen.get(kind) ?? { corrupt: 0, exact: 0 };
          seen.set(kind, tally);
          if (outcome.error !== undefined) {
            expect(isCorrupt(outcome.error)).toBe(true);
            expect((outcome.error as Error).message).toContain(key.startsWith(FILE) ? key.slice(FILE.length) : key);
            tally.corrupt++;
            return;
          }
          // An exact continuation: only records recovery does not read (old batches, lost
          // ranges) can be damaged here, and listing them (inspect) reports the damage.
          expect(['batch', 'lost']).toContain(kind);
          expect(key).not.toBe('batch!0000000000000004');
          expect(outcome.writes).toEqual(reference.writes);
          expect(outcome.positions).toEqual(reference.positions);
          const listed = outcome.listed as { error?: unknown };
          expect(isCorrupt(listed.error)).toBe(true);
          expect((listed.error as Error).message).toContain(key);
          tally.exact++;
        },
      ),
      propertyParams(400),
    );
    // Every kind was damaged; the records recovery reads always stopped the run.
    const stops = layout === 'in LevelDB' ? ['meta', 'out', 'state'] : ['file', 'meta', 'out', 'state'];
    expect([...seen.keys()].sort()).toEqual(['batch', 'lost', ...stops].sort());
    for (const kind of stops) expect(seen.get(kind)!.exact).toBe(0);
  });
});
