// onSinkError with a real constraint violation: 'fail' stops naming the batch and the row
// and keeps the batch staged; 'dead-letter' routes the rejected rows to the dead-letter
// sink and writes the rest, and a crash after the rest was written still dead-letters
// exactly the same rows.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  defineJob, Engine, fileSink, generatorSource, postgresSink, SinkRejectedError, type RejectedOutput, type SourceRecord,
} from 'tidemark';
import { openCheckpoint } from '../../checkpoint/store';
import { testSchema } from '../support/postgres';
import { tempDir } from '../support/tmp';

const db = testSchema('onerr');
const root = tempDir();
class Crash extends Error {}

const offsets = (records: SourceRecord[]) => records.map((r) => ({ o: r.offset }));
/** Offsets the table refuses: 5, 18, 31, … */
const refused = (o: number) => o % 13 === 5;

function job(name: string, table: string, extra: object = {}) {
  return defineJob({
    name,
    source: generatorSource({ partitions: 1, size: 40 }),
    sinks: [postgresSink<{ o: number }>({ connection: db.config, name: 'pg', table, columns: ['o'] })],
    transform: offsets,
    batch: { maxRecordsPerPartition: 10 },
    sinkAttempts: 2,
    ...extra,
  });
}

const tableRows = async (table: string) => (await db.query<{ o: number }>(`SELECT o FROM ${table} ORDER BY o`)).map((r) => r.o);

describe("onSinkError 'fail' (the default)", () => {
  it('stops with a message naming the batch and the row; nothing of the batch is written; it stays staged and goes through once the table is fixed', async () => {
    await db.query('CREATE TABLE strict (o int PRIMARY KEY CHECK (o % 13 <> 5))');
    const dir = join(root, 'fail');
    const err = await new Engine(job('fail-job', 'strict'), { checkpointDir: dir }).run({ once: true }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SinkRejectedError);
    expect((err as Error).message).toMatch(/^Sink pg rejected batch 1: output #5 \{"o":5\}: new row for relation "strict" violates check constraint "strict_o_check".*23514/);
    expect((err as SinkRejectedError).exitCode).toBe(9);
    expect(await tableRows('strict')).toEqual([]);

    const store = await openCheckpoint(dir);
    const view = await store.load();
    await store.close();
    expect(view.inFlight).toMatchObject({ id: 1, state: 'staged' });

    await db.query('ALTER TABLE strict DROP CONSTRAINT strict_o_check');
    const summary = await new Engine(job('fail-job', 'strict'), { checkpointDir: dir }).run({ once: true });
    expect(summary.lastCommitted).toBe(4);
    expect(await tableRows('strict')).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });
});

describe("onSinkError 'dead-letter'", () => {
  const expectedRejected = (batchId: number) => Array.from({ length: 10 }, (_, i) => (batchId - 1) * 10 + i).filter(refused);
  /** The dead-letter file of a batch; none when the batch had nothing to dead-letter. */
  const deadLetters = (dir: string, batchId: number): RejectedOutput[] => {
    const file = join(dir, 'dead', `batch-${batchId}.jsonl`);
    return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RejectedOutput) : [];
  };

  it('needs a dead-letter sink', () => {
    expect(() => job('x', 'y', { onSinkError: 'dead-letter' })).toThrow(/Job field `deadLetterSink` must be a sink when onSinkError is 'dead-letter'/);
    expect(() => job('x', 'y', { onSinkError: 'drop' })).toThrow(/Job field `onSinkError` must be one of 'fail', 'dead-letter'; got "drop"/);
  });

  it.each([true, false])('routes rejected rows to the dead-letter sink and writes the rest; after a crash past the write, the same rows are dead-lettered (stageOutputs %s)', async (stageOutputs) => {
    const table = `lenient_${stageOutputs}`;
    await db.query(`CREATE TABLE ${table} (o int PRIMARY KEY CHECK (o % 13 <> 5))`);
    const dir = join(root, `dl-${stageOutputs}`);
    const make = () => job(`dl-job-${stageOutputs}`, table, { onSinkError: 'dead-letter', deadLetterSink: fileSink({ dir, name: 'dead' }), stageOutputs });

    // Batch 2 is rejected in part, its rest written, then the process dies before the dead letters are delivered.
    let delivered = 0;
    const crash = (phase: string) => {
      if (phase === 'delivered:pg' && ++delivered === 2) throw new Crash(phase);
    };
    await expect(new Engine(make(), { checkpointDir: dir, crashPoint: crash }).run({ once: true })).rejects.toThrow(Crash);
    expect(await tableRows(table)).toEqual(Array.from({ length: 20 }, (_, i) => i).filter((o) => !refused(o)));
    expect(deadLetters(dir, 1).map((d) => d.output)).toEqual(expectedRejected(1).map((o) => ({ o })));

    // On restart the sink finds batch 2 in its ledger and writes nothing: the rejection comes from the checkpoint.
    const summary = await new Engine(make(), { checkpointDir: dir }).run({ once: true });
    expect(summary.lastCommitted).toBe(4);
    expect(await tableRows(table)).toEqual(Array.from({ length: 40 }, (_, i) => i).filter((o) => !refused(o)));
    expect([1, 2, 3, 4].map((b) => expectedRejected(b).length)).toEqual([1, 1, 0, 1]);
    for (const b of [1, 2, 3, 4]) {
      const dl = deadLetters(dir, b);
      expect(dl.map((d) => d.output)).toEqual(expectedRejected(b).map((o) => ({ o })));
      for (const d of dl) {
        expect(d).toMatchObject({ sink: 'pg', batchId: b, index: (d.output as { o: number }).o - (b - 1) * 10 });
        expect(d.error).toMatch(/violates check constraint.*23514/);
      }
    }
    const ledger = await db.query<{ batch_id: number }>("SELECT batch_id::int AS batch_id FROM tidemark_ledger WHERE job = $1 ORDER BY batch_id", [`dl-job-${stageOutputs}`]);
    expect(ledger.map((r) => r.batch_id)).toEqual([1, 2, 3, 4]);
  });
});
