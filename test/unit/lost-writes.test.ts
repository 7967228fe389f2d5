// The case found on 2026-11-29, on a real LevelDB: the newest write log cut to half its
// length rolls committed batches back with no report from LevelDB. The source's progress
// marks (recovery/crosscheck.ts) stop the next run with exit 7 instead of a re-run.
import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptCheckpointError, defineJob, Engine, memorySink, type Source, type SourceRecord } from 'tidemark';
import { ReportingLog } from '../support/memory-source';
import { tempDir } from '../support/tmp';

const root = tempDir();

function engine(dir: string, source: Source, warnings: string[] = [], stageOutputs = true): Engine<string> {
  return new Engine(defineJob({
    name: 'lost', source, sinks: [memorySink<string>()], transform: (records: SourceRecord[]) => records.map((r) => `${r.partition}:${r.offset}`),
    batch: { maxRecordsPerPartition: 5, maxWaitMs: 0 }, stageOutputs,
  }), { checkpointDir: dir, logger: { debug: () => {}, info: () => {}, error: () => {}, warn: (_fields: object, message?: string) => { warnings.push(message ?? ''); } } });
}

describe('a checkpoint that lost synced writes', () => {
  /** Runs 8 batches, cuts the newest write log to half its length, runs again: the error. */
  async function cutAndRerun(dir: string, stageOutputs: boolean): Promise<unknown> {
    const log = new ReportingLog('t', 1);
    log.append(0, 40);
    expect((await engine(dir, log, [], stageOutputs).run({ once: true })).lastCommitted).toBe(8);
    const logs = readdirSync(join(dir, 'db')).filter((f) => f.endsWith('.log')).sort();
    const newest = join(dir, 'db', logs[logs.length - 1]!);
    truncateSync(newest, Math.floor(statSync(newest).size / 2));
    const err = await engine(dir, log, [], stageOutputs).run({ once: true }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptCheckpointError);
    expect(err).toMatchObject({ exitCode: 7 });
    return err;
  }

  it('the newest LevelDB log cut to half its length: exit 7 naming the reported positions, not a re-run', async () => {
    // Without staged outputs: with them, the side log of a batch rolled back to STAGED may be what stops it first (below).
    const message = (await cutAndRerun(join(root, 'cut'), false) as Error).message;
    expect(message).toContain('the memory log holds the positions of batch 8 of this checkpoint');
    expect(message).toMatch(/t\/0 40 \(checkpoint \d+\)/);
    expect(message).toMatch(/the checkpoint's last committed batch is [0-7]\b/);
  });

  it('… with staged outputs: exit 7 too, from the cross-check or from the side log the lost COMMIT had removed', async () => {
    const message = (await cutAndRerun(join(root, 'cut-staged'), true) as Error).message;
    expect(message).toMatch(/the memory log holds the positions of batch 8 of this checkpoint|side log staged-\d{16}\.log is missing \(the COMMIT of its batch removes it: was that COMMIT lost\?\)/);
  });

  it('a source that cannot be asked is not a failure: the run goes on, with a warning', async () => {
    const dir = join(root, 'unasked');
    const log = new ReportingLog('t', 1);
    log.append(0, 10);
    await engine(dir, log).run({ once: true });
    class Mute extends ReportingLog {
      override async reportedPositions(): Promise<never> {
        throw new Error('no rights to read the group');
      }
    }
    const mute = new Mute('t', 1);
    mute.append(0, 15);
    const warnings: string[] = [];
    expect((await engine(dir, mute, warnings).run({ once: true })).lastCommitted).toBe(3);
    expect(warnings).toEqual(['cross-check at start: could not read the positions reported to the source; not checked']);
  });
});
