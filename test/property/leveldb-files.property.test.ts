// Issue 13 item 2, the file half: bit rot or a torn copy of one LevelDB file of a copied
// checkpoint (a table, the write log, the MANIFEST, CURRENT) either stops the run with
// the corrupt-checkpoint code (exit 7) before any sink is written, or the run is an exact
// continuation: every batch id holds the outputs a crash-free run gave it, no offset is
// skipped and none is delivered twice. The record half is integrity.property.test.ts.
import { cpSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { ExitCode, isTidemarkError } from '../../checkpoint/errors';
import { defineJob, Engine, type Sink, type SinkBatch, type SourceRecord } from 'tidemark';
import { MemoryLog } from '../support/memory-source';
import { tempDir } from '../support/tmp';
import { propertyParams } from './params';

const root = tempDir('tidemark-ldbflip-');

/** A sink that keeps, as a file sink does, one set of outputs per batch id, and its ledger. */
class LedgerSink implements Sink<string> {
  readonly name = 'out';
  /** Every write, in order: a redelivery shows as a second write of an id. */
  readonly writes: Array<{ id: number; outputs: string[] }> = [];
  constructor(readonly held = new Map<number, string[]>()) {}
  async write(batch: SinkBatch<string>): Promise<void> {
    this.writes.push({ id: batch.id, outputs: [...batch.outputs] });
    this.held.set(batch.id, [...batch.outputs]);
  }
  async lastDelivered(): Promise<number | undefined> {
    return this.held.size === 0 ? undefined : Math.max(...this.held.keys());
  }
}

/** Two partitions; t/1 loses [4, 6) to retention after the first run (a lost record). */
function source(trimmed: boolean): MemoryLog {
  const log = new MemoryLog('t', 2);
  log.append(0, 24);
  log.append(1, 20);
  if (trimmed) log.trim(1, 6);
  return log;
}

class Crash extends Error {}

function job(log: MemoryLog, sink: LedgerSink) {
  return defineJob<string>({
    name: 'ldbflip', source: log, sinks: [sink],
    transform: (records: SourceRecord[]) => records.map((r) => `${r.partition}:${r.offset}`),
    batch: { maxRecordsPerPartition: 2, minRecords: 1, maxWaitMs: 0 },
    // Small: old batch records are deleted, so tables hold tombstones too.
    checkpoint: { retainBatches: 3 },
    onDataLoss: 'skip',
  });
}

/**
 * Batches 1–6 in three runs (each open turns the previous write log into a table, so the
 * directory has several), t/1 trimmed after the first; then batches 7 and 8 and batch 9
 * staged, and the run stopped (`crash`), or carried to the end of the log.
 */
async function drive(dir: string, sink: LedgerSink, crash: boolean): Promise<void> {
  const log = source(false);
  const engine = (crashPoint?: (phase: string) => void) => new Engine(job(log, sink), { checkpointDir: dir, fingerprint: 'v1', ...(crashPoint ? { crashPoint } : {}) });
  await engine().run({ once: true, maxBatches: 2 });
  log.trim(1, 6);
  await engine().run({ once: true, maxBatches: 2 });
  await engine().run({ once: true, maxBatches: 2 });
  if (!crash) return void await engine().run({ once: true });
  // Batches 7 and 8 committed and 9 staged in this run: its write log holds COMMITs to lose.
  let staged = 0;
  await expect(engine((phase) => {
    if (phase === 'staged' && ++staged === 3) throw new Crash(phase);
  }).run({ once: true })).rejects.toBeInstanceOf(Crash);
}

/** The LevelDB files worth damaging, by kind (LOCK and the informational LOG are not read as data). */
function filesByKind(db: string): Map<string, string[]> {
  const kinds = new Map<string, string[]>();
  for (const name of readdirSync(db).sort()) {
    const kind = /\.(ldb|sst)$/.test(name) ? 'table' : name.endsWith('.log') ? 'log' : name.startsWith('MANIFEST-') ? 'manifest' : name === 'CURRENT' ? 'current' : undefined;
    if (kind) kinds.set(kind, [...(kinds.get(kind) ?? []), name]);
  }
  return kinds;
}

type Damage = { kind: 'flip'; bits: number[] } | { kind: 'truncate'; to: number };

function damage(file: string, how: Damage): void {
  const size = statSync(file).size;
  if (size === 0) return;
  if (how.kind === 'truncate') return truncateSync(file, how.to % size);
  const bytes = readFileSync(file);
  for (const bit of new Set(how.bits.map((b) => b % (size * 8)))) bytes[bit >> 3]! ^= 1 << (bit & 7);
  writeFileSync(file, bytes);
}

const text = (p: number, from: number, until: number): string[] => Array.from({ length: until - from }, (_, i) => `${p}:${from + i}`);

describe('issue 13: a damaged LevelDB file stops the run (exit 7) before any sink write, or the run continues exactly', () => {
  const base = join(root, 'base');
  let reference: Map<number, string[]>;
  let beforeCrash: Map<number, string[]>;
  let kinds: Map<string, string[]>;

  beforeAll(async () => {
    const clean = new LedgerSink();
    await drive(join(root, 'clean'), clean, false);
    reference = clean.held;
    const crashed = new LedgerSink();
    await drive(base, crashed, true);
    beforeCrash = crashed.held;
    kinds = filesByKind(join(base, 'db'));
  });

  /** Runs a copy of the crashed checkpoint, with `spoil` applied to its db/, to the end of the log. */
  async function resume(name: string, spoil: (db: string) => void): Promise<{ sink: LedgerSink; error?: unknown }> {
    const dir = join(root, name);
    cpSync(base, dir, { recursive: true });
    spoil(join(dir, 'db'));
    const sink = new LedgerSink(new Map([...beforeCrash].map(([id, o]) => [id, [...o]])));
    try {
      await new Engine(job(source(true), sink), { checkpointDir: dir, fingerprint: 'v1' }).run({ once: true });
      return { sink };
    } catch (error) {
      return { sink, error };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('the fixture: every offset once in a crash-free run; the crash left batch 9 staged and the directory holds every kind of file', async () => {
    expect([...reference.values()].flat().sort()).toEqual([...text(0, 0, 24), ...text(1, 0, 4), ...text(1, 6, 20)].sort());
    expect([...beforeCrash.keys()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...kinds.keys()].sort()).toEqual(['current', 'log', 'manifest', 'table']);
    expect(kinds.get('table')!.length).toBeGreaterThanOrEqual(2);
    const undamaged = await resume('undamaged', () => {});
    expect(undamaged.error).toBeUndefined();
    // Batch 9 is redelivered from its staged outputs, then planning goes on.
    expect(undamaged.sink.writes[0]!.id).toBe(9);
    expect(undamaged.sink.held).toEqual(reference);
  });

  it('holds for flipped bits and truncations of each kind of LevelDB file', async () => {
    const seen = new Map<string, { corrupt: number; exact: number }>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('table', 'log', 'manifest', 'current'),
        fc.nat(),
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), bits: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }) }),
          fc.record({ kind: fc.constant('truncate' as const), to: fc.nat() }),
        ),
        async (kind, pick, how) => {
          const names = kinds.get(kind)!;
          const file = names[pick % names.length]!;
          const outcome = await resume('run', (db) => damage(join(db, file), how));
          const tally = seen.get(kind) ?? { corrupt: 0, exact: 0 };
          seen.set(kind, tally);
          if (outcome.error !== undefined) {
            // Refused: the corrupt-checkpoint code, and not one sink write after the damage.
            expect({ code: (outcome.error as { code?: unknown }).code, exitCode: (outcome.error as { exitCode?: unknown }).exitCode, message: (outcome.error as Error).message })
              .toMatchObject({ code: 'TIDEMARK_CORRUPT_CHECKPOINT', exitCode: ExitCode.corruptCheckpoint });
            expect(isTidemarkError(outcome.error)).toBe(true);
            // A damaged table is found by its block checksums before LevelDB opens it (checkpoint/tables.ts):
            // LevelDB's compaction merged it unverified, and a key out of order aborted the process.
            if (kind === 'table') expect((outcome.error as Error).message).toContain(`table files fail their block checksums: ${file}: `);
            expect(outcome.sink.writes).toEqual([]);
            tally.corrupt++;
            return;
          }
          // Went on: every write is the crash-free outputs of its batch id, and the sink ends
          // holding exactly the crash-free result (no offset skipped, none twice).
          for (const w of outcome.sink.writes) expect(w.outputs).toEqual(reference.get(w.id));
          expect(outcome.sink.held).toEqual(reference);
          tally.exact++;
        },
      ),
      propertyParams(200),
    );
    expect([...seen.keys()].sort()).toEqual(['current', 'log', 'manifest', 'table']);
  });
});
