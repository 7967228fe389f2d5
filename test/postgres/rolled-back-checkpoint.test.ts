// A checkpoint restored from a copy older than the PostgreSQL sink's ledger: the ledger
// holds batches the checkpoint never committed, so it lost synced writes. The engine stops at
// start with exit 7 naming the ledger's batch (recovery/crosscheck.ts), before any write.
// Before 2026-11-30 it ran batches 2–4 again: the ledger took them as delivered (same
// ranges) while the other sink got them a second time.
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptCheckpointError, defineJob, Engine, memorySink, postgresSink, type SourceRecord } from 'tidemark';
import { MemoryLog } from '../support/memory-source';
import { testSchema } from '../support/postgres';
import { tempDir } from '../support/tmp';

const db = testSchema('rolledback');
const root = tempDir();

describe('postgresSink beside a rolled-back checkpoint', () => {
  beforeAll(async () => {
    await db.query('CREATE TABLE seen (v text PRIMARY KEY)');
  });

  it('stops at start with exit 7 naming the ledger, before any sink is written', async () => {
    const log = new MemoryLog('t', 1);
    log.append(0, 30);
    const files = memorySink<string>();
    const run = (maxBatches?: number) => new Engine(defineJob({
      name: 'rolled-back', source: log, transform: (records: SourceRecord[]) => records.map((r) => `${r.partition}:${r.offset}`),
      sinks: [files, postgresSink<string>({ connection: db.config, table: 'seen', columns: ['v'], row: (v) => [v] })],
      batch: { maxRecordsPerPartition: 5, maxWaitMs: 0 },
    }), { checkpointDir: join(root, 'cp') }).run({ once: true, ...(maxBatches ? { maxBatches } : {}) });

    await run(1);
    cpSync(join(root, 'cp'), join(root, 'copy'), { recursive: true });
    expect((await run(3)).lastCommitted).toBe(4);
    rmSync(join(root, 'cp'), { recursive: true });
    cpSync(join(root, 'copy'), join(root, 'cp'), { recursive: true });

    const written = files.writes;
    const err = await run().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err).toMatchObject({ exitCode: 7 });
    expect((err as Error).message).toContain("sink postgres's ledger holds batch 4, delivered only after it was staged; the checkpoint's last committed batch is 1, nothing in flight");
    expect(files.writes).toBe(written);
    expect((await db.query<{ n: string }>('SELECT count(*) AS n FROM seen'))[0]!.n).toBe('20');
  });
});
