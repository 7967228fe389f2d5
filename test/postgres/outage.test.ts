// The PostgreSQL server goes down during delivery — before the batch's transaction, and in
// the middle of it — on a server of this test's own (the shared one serves other files).
// The engine retries with backoff, the batch stays staged meanwhile, and once the server
// is back every record is in the table exactly once.
import { join } from 'node:path';
import { Pool } from 'pg';
import { defineJob, Engine, generatorSource, postgresSink, type Logger, type SourceRecord } from 'tidemark';
import { openCheckpoint } from '../../checkpoint/store';
import { privateServer } from '../support/postgres';
import { tempDir } from '../support/tmp';

const server = privateServer();
const root = tempDir('tidemark-pg-outage-');
let pool: Pool;

beforeAll(async () => {
  pool = new Pool({ connectionString: server.url(), max: 2 });
  pool.on('error', () => {});
  await pool.query('CREATE TABLE before_tx (p int, o int, PRIMARY KEY (p, o))');
  await pool.query('CREATE TABLE mid_tx (p int, o int)'); // no key: a doubled write would show
});
afterAll(async () => {
  await pool.end();
});

/** A logger that remembers the engine's retry warnings and calls `onRetry` at the first one of each outage. */
function retryWatcher(onRetry: () => void): Logger & { retries: string[] } {
  const retries: string[] = [];
  const noop = () => {};
  return {
    retries, debug: noop, info: noop, error: noop,
    warn: (_obj: object, msg?: string) => {
      if (msg?.includes('retrying')) {
        retries.push(msg);
        if (retries.length === 1) onRetry();
      }
    },
  };
}

const rows = (records: SourceRecord[]) => records.map((r) => ({ p: r.partition, o: r.offset }));
const count = async (table: string) => (await pool.query<{ n: string; d: string }>(`SELECT count(*) AS n, count(DISTINCT (p, o)) AS d FROM ${table}`)).rows[0];

it('down before the transaction: retried with backoff, the batch stays staged, then written once', async () => {
  const dir = join(root, 'before');
  let stagedWhileDown: string | undefined;
  const logger = retryWatcher(() => {
    server.resume();
  });
  let crossed = 0;
  const job = defineJob({
    name: 'outage-before', source: generatorSource({ partitions: 2, size: 600 }), transform: rows,
    sinks: [postgresSink<{ p: number; o: number }>({ connection: server.url(), name: 'pg', table: 'before_tx', columns: ['p', 'o'] })],
    batch: { maxRecordsPerPartition: 100 }, sinkAttempts: 20,
  });
  const engine = new Engine(job, {
    checkpointDir: dir, logger,
    crashPoint: async (phase) => {
      if (phase === 'delivering:pg' && ++crossed === 3) server.halt();
    },
    onBatch: (s) => {
      if (s.id === 3) stagedWhileDown = `${logger.retries.length} retries before batch 3 committed`;
    },
  });
  const summary = await engine.run({ once: true });
  expect(summary.lastCommitted).toBe(6);
  expect(logger.retries.length).toBeGreaterThanOrEqual(1);
  expect(stagedWhileDown).toMatch(/^[1-9]\d* retries before batch 3 committed$/);
  expect(await count('before_tx')).toEqual({ n: '1200', d: '1200' });
  const ledger = await pool.query("SELECT batch_id::int AS id FROM tidemark_ledger WHERE job = 'outage-before' ORDER BY batch_id");
  expect(ledger.rows.map((r: { id: number }) => r.id)).toEqual([1, 2, 3, 4, 5, 6]);
});

it('down in the middle of the transaction: nothing of it survives, the retry writes the batch once', async () => {
  const dir = join(root, 'mid');
  let halted = false;
  const logger = retryWatcher(() => server.resume());
  const job = defineJob({
    name: 'outage-mid', source: generatorSource({ partitions: 2, size: 600 }), transform: rows,
    sinks: [postgresSink<{ p: number; o: number }>({
      connection: server.url(), name: 'pg', mode: 'custom',
      apply: async (client, batch) => {
        await client.query('INSERT INTO mid_tx SELECT * FROM json_to_recordset($1) AS x(p int, o int)', [JSON.stringify(batch.outputs)]);
        if (batch.id === 4 && !halted) {
          halted = true;
          server.halt(); // the rows above are in an open transaction that now dies with the server
        }
      },
    })],
    batch: { maxRecordsPerPartition: 100 }, sinkAttempts: 20,
  });
  const summary = await new Engine(job, { checkpointDir: dir, logger }).run({ once: true });
  expect(halted).toBe(true);
  expect(logger.retries.length).toBeGreaterThanOrEqual(1);
  expect(summary.lastCommitted).toBe(6);
  expect(await count('mid_tx')).toEqual({ n: '1200', d: '1200' });
});

it('down for longer than the attempts: SinkError, the batch stays staged, a restart delivers it once', async () => {
  await pool.query('CREATE TABLE long_outage (p int, o int)');
  const dir = join(root, 'long');
  const make = (attempts: number) => defineJob({
    name: 'outage-long', source: generatorSource({ partitions: 1, size: 300 }), transform: rows,
    sinks: [postgresSink<{ p: number; o: number }>({ connection: server.url(), name: 'pg', table: 'long_outage', columns: ['p', 'o'] })],
    batch: { maxRecordsPerPartition: 100 }, sinkAttempts: attempts,
  });
  let crossed = 0;
  const failed = new Engine(make(2), {
    checkpointDir: dir,
    crashPoint: (phase) => {
      if (phase === 'delivering:pg' && ++crossed === 2) server.halt();
    },
  }).run({ once: true });
  await expect(failed).rejects.toThrow(/Sink pg failed to write batch 2: .*The batch stays staged and is delivered again on restart/);
  const store = await openCheckpoint(dir, { readOnly: true });
  expect((await store.load()).inFlight).toMatchObject({ id: 2, state: 'staged' });
  await store.close();

  server.resume();
  const summary = await new Engine(make(2), { checkpointDir: dir }).run({ once: true });
  expect(summary.lastCommitted).toBe(3);
  expect(await count('long_outage')).toEqual({ n: '300', d: '300' });
});
