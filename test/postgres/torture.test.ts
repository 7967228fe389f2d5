// The PostgreSQL sink in the crash torture: the torture job (test/crash/torture-job.ts)
// also writes every output to a table, while the driver SIGKILLs it at random moments and
// at every protocol point, the sink's own included. The file sink is checked by the
// driver (nothing lost, nothing doubled, one execution per batch); the table must then
// hold exactly the same outputs, execution ids and all, and one ledger row per batch.
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedProducer, fileSinkKeys, printReport, runTorture } from '../crash/torture';
import { testSchema } from '../support/postgres';

const db = testSchema('torture');

it('survives 40 SIGKILLs: the table holds exactly what the file sink holds', async () => {
  await db.query('CREATE TABLE torture_out (p int NOT NULL, o int NOT NULL, v text NOT NULL, execution text NOT NULL)');
  const dir = join(tmpdir(), `tidemark-torture-pg-${process.pid}`);
  const report = await runTorture({
    kills: 40, dir, producer: (d) => embeddedProducer(d),
    env: { TORTURE_PG_URL: db.config.connectionString, TORTURE_PG_SCHEMA: db.schema },
    extraSeamPoints: ['delivering:postgres', 'delivered:postgres', 'delivered:postgres'],
  });
  console.log(printReport(report, join(tmpdir(), `tidemark-torture-pg-${process.pid}.json`)));
  expect({ seed: report.seed, lost: report.lost, duplicated: report.duplicated, mixed: report.mixedExecutions, outOfOrder: report.outOfOrder })
    .toEqual({ seed: report.seed, lost: 0, duplicated: 0, mixed: 0, outOfOrder: 0 });
  expect(report.outputsVerified).toBe(report.produced);

  const expected = fileSinkKeys(dir);
  const batches = readdirSync(join(dir, 'out', 'files')).filter((f) => /^batch-\d+\.jsonl$/.test(f)).length;
  const rows = (await db.query<{ k: string }>("SELECT p || ':' || o || ':' || v || ':' || execution AS k FROM torture_out")).map((r) => r.k).sort();
  expect(rows.length).toBe(expected.length);
  expect(rows).toEqual(expected);
  const ledger = await db.query<{ n: string }>("SELECT count(*) AS n FROM tidemark_ledger WHERE job = 'torture' AND sink = 'postgres'");
  expect(Number(ledger[0]!.n)).toBe(batches);
}, 900_000);
