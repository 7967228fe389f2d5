// The PostgreSQL sink under real crashes: `tidemark run` SIGKILLs itself at a protocol point
// (TIDEMARK_CRASH_AT), is restarted on the same checkpoint, and the table must then hold
// every record exactly once, each batch written by one execution, with one ledger row per
// batch. The key case is `delivered:pg`: the rows and the ledger row are committed in
// PostgreSQL, the checkpoint does not know it, and the redelivery must find the ledger row.
import { join } from 'node:path';
import { generatedValue } from '../../src/sources/generator';
import { killAll, runTidemark } from '../support/processes';
import { testSchema } from '../support/postgres';
import { tempDir } from '../support/tmp';

afterAll(killAll);
const root = tempDir('tidemark-pg-crash-');
const JOB = join(__dirname, 'jobs', 'pg-job.ts');
const SIZE = 3000; // per partition, 2 partitions, 500 per partition per batch: 6 batches of 1,000
const BATCHES = 6;

const cases = ['delivered:pg:3', 'delivering:pg:3', 'staged:2', 'committed:4', 'delivered:pg:1'].map((point) => ({ point, db: testSchema('crash') }));

describe.each(cases)('killed at $point, then restarted', ({ point, db }) => {
  it('ends with every record exactly once, one execution per batch, one ledger row per batch', async () => {
    await db.query('CREATE TABLE out (p int NOT NULL, o int NOT NULL, v text NOT NULL, pid int NOT NULL)'); // no unique key: duplicates would show
    const checkpoint = join(root, point.replace(/:/g, '-'));
    const env = { PG_URL: db.config.connectionString, PG_SCHEMA: db.schema, JOB_SIZE: String(SIZE), TIDEMARK_LOG_LEVEL: 'info' };

    const crashed = await runTidemark(['run', JOB, '--checkpoint', checkpoint, '--once'], { ...env, TIDEMARK_CRASH_AT: point });
    expect({ signal: crashed.signal, stderr: crashed.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
    const firstPid = Number(/"pid":(\d+)/.exec(crashed.stdout)?.[1]);
    const before = await db.query<{ n: string }>('SELECT count(*) AS n FROM out');

    const resumed = await runTidemark(['run', JOB, '--checkpoint', checkpoint, '--once'], env);
    expect({ code: resumed.code, stderr: resumed.stderr }).toEqual({ code: 0, stderr: '' });

    const [counts] = await db.query<{ n: string; distinct_offsets: string }>('SELECT count(*) AS n, count(DISTINCT (p, o)) AS distinct_offsets FROM out');
    expect(counts).toEqual({ n: String(2 * SIZE), distinct_offsets: String(2 * SIZE) });
    // The values are the source's: nothing mixed up on the way.
    const rows = await db.query<{ p: number; o: number; v: string }>('SELECT p, o, v FROM out');
    expect(rows.filter((r) => r.v !== generatedValue(r.p, r.o).toString())).toEqual([]);
    const ledger = await db.query<{ batch_id: number }>("SELECT batch_id::int AS batch_id FROM tidemark_ledger WHERE job = 'pg-crash' AND sink = 'pg' ORDER BY batch_id");
    expect(ledger.map((r) => r.batch_id)).toEqual(Array.from({ length: BATCHES }, (_, i) => i + 1));
    // Each batch's 1,000 rows come from one execution (one process id per 500-offset block of each partition).
    const executions = await db.query<{ block: number; pids: number }>('SELECT o / 500 AS block, count(DISTINCT pid)::int AS pids FROM out GROUP BY p, o / 500 HAVING count(DISTINCT pid) > 1');
    expect(executions).toEqual([]);
    if (point.startsWith('delivered:pg')) {
      // The crashed process had written its batch; the restarted one wrote nothing of it again.
      const crashedBatch = Number(point.split(':')[2]);
      expect(Number(before[0]!.n)).toBe(crashedBatch * 1000);
      const pids = await db.query<{ pid: number }>('SELECT DISTINCT pid FROM out WHERE o >= $1 AND o < $2', [(crashedBatch - 1) * 500, crashedBatch * 500]);
      expect(pids).toEqual([{ pid: firstPid }]);
    }
  });
});
