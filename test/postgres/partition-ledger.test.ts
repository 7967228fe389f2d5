// The PostgreSQL sink in group mode (docs/scale-out.md) against a real server: the ledger is
// kept per (job, sink, topic, partition) with the newest claiming epoch; a write is judged by
// recovery/handoff.ts in the same transaction as its rows, with the ledger row locked.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvariantError, PartitionFencedError, postgresSink, type PostgresSink, type SinkBatch } from 'tidemark';
import { testSchema } from '../support/postgres';
import { repoRoot } from '../support/processes';

const db = testSchema('pledger');
const JOB = 'group-job';

interface Row { readonly id: number }
const rows = (from: number, until: number): Row[] => Array.from({ length: until - from }, (_, i) => ({ id: from + i }));

/** One partition's range [from, until) written by the owner of `epoch`; the outputs are the offsets. */
const owned = (partition: number, epoch: number, from: number, until: number, id = 1): SinkBatch<Row> => ({
  id, job: JOB, ranges: [{ topic: 'clicks', partition, from, until }], outputs: rows(from, until), owner: { topic: 'clicks', partition, epoch },
});

/** A sink writing the outputs into `out (partition, id)`; `gate`, when set, holds the transaction open after the rows. */
function sink(hold?: { gate?: Promise<void>; entered?: () => void }): PostgresSink<Row> {
  return postgresSink<Row>({
    connection: db.config, name: 'out', mode: 'custom',
    apply: async (client, b) => {
      const partition = b.owner?.partition ?? -1;
      for (const o of b.outputs) await client.query('INSERT INTO out (partition, id) VALUES ($1, $2)', [partition, o.id]);
      if (hold?.gate) {
        hold.entered?.();
        await hold.gate;
      }
    },
  });
}

const held = async (partition: number): Promise<number[]> =>
  (await db.query<{ id: number }>('SELECT id FROM out WHERE partition = $1 ORDER BY id', [partition])).map((r) => r.id);
const ledger = async (partition: number): Promise<unknown> =>
  (await db.query('SELECT epoch::int AS epoch, until::int AS until FROM tidemark_partition_ledger WHERE job = $1 AND sink = $2 AND topic = $3 AND partition = $4',
    [JOB, 'out', 'clicks', partition]))[0];
const settle = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'ok', (e: unknown) => e);
const range = (from: number, until: number): number[] => rows(from, until).map((r) => r.id);

beforeAll(async () => {
  await db.query('CREATE TABLE out (partition int NOT NULL, id int NOT NULL)');
});

describe('postgresSink in group mode: the per-partition ledger', () => {
  it('creates the documented table; a claim records the epoch; a duplicate range (whole or part) is a no-op', async () => {
    const s = sink();
    expect(s.partitionLedgerTable).toBe('"tidemark_partition_ledger"');
    const documented = readFileSync(join(repoRoot, 'docs', 'sinks.md'), 'utf8');
    expect(documented).toContain(s.partitionLedgerDDL.replace('"tidemark_partition_ledger"', 'tidemark_partition_ledger'));
    await s.claim!({ job: JOB, topic: 'clicks', partition: 0, epoch: 3 });
    expect(await ledger(0)).toEqual({ epoch: 3, until: null });
    await s.write(owned(0, 3, 0, 10));
    await s.write(owned(0, 3, 0, 10));
    await s.write(owned(0, 3, 5, 10, 2));
    await s.write(owned(0, 3, 10, 15, 2));
    await s.close();
    expect(await held(0)).toEqual(range(0, 15));
    expect(await ledger(0)).toEqual({ epoch: 3, until: 15 });
    // batch ids are each daemon's own: group mode keeps no batch ledger
    expect(await db.query("SELECT to_regclass('tidemark_ledger') AS t")).toEqual([{ t: null }]);
  });

  it('an older epoch is refused with nothing written, at write and at claim; a newer claim fences the older owner\'s next write', async () => {
    const a = sink();
    const b = sink();
    await a.claim!({ job: JOB, topic: 'clicks', partition: 1, epoch: 1 });
    await a.write(owned(1, 1, 0, 10));
    // A claim answers with what the ledger held (the engine tells a lost group state by it: docs/scale-out.md).
    expect(await b.claim!({ job: JOB, topic: 'clicks', partition: 1, epoch: 2 })).toEqual({ epoch: 1, until: 10 });
    const refused = await settle(a.write(owned(1, 1, 10, 20, 2)));
    expect(refused).toBeInstanceOf(PartitionFencedError);
    expect((refused as PartitionFencedError).message).toMatch(/clicks\/1 by the owner of epoch 1: epoch 2 owns it now/);
    await expect(a.claim!({ job: JOB, topic: 'clicks', partition: 1, epoch: 1 })).rejects.toMatchObject({ code: 'TIDEMARK_PARTITION_FENCED', newer: 2, delivered: 10 });
    expect(await held(1)).toEqual(range(0, 10));
    expect(await ledger(1)).toEqual({ epoch: 2, until: 10 });
    await b.write(owned(1, 2, 10, 20, 7));
    expect(await held(1)).toEqual(range(0, 20));
    await Promise.all([a.close(), b.close()]);
  });

  it('a range that does not continue the ledger is an InvariantError, with nothing written', async () => {
    const s = sink();
    await s.write(owned(2, 1, 0, 10));
    await expect(s.write(owned(2, 1, 20, 30, 2))).rejects.toThrow(InvariantError);
    await expect(s.write(owned(2, 1, 5, 15, 2))).rejects.toThrow(/clicks\/2 \[5, 15\) but its ledger .* ends at 10.*report it with `tidemark inspect <the job's checkpoint directory>` output/);
    await s.close();
    expect(await held(2)).toEqual(range(0, 10));
  });

  it('a claim waits for an older owner\'s write in flight (the row is locked), then the new owner finds its rerun a duplicate', async () => {
    let release = (): void => {};
    let entered = (): void => {};
    const inside = new Promise<void>((resolve) => { entered = resolve; });
    const zombie = sink({ gate: new Promise<void>((resolve) => { release = resolve; }), entered });
    const successor = sink();
    await zombie.claim!({ job: JOB, topic: 'clicks', partition: 3, epoch: 1 });
    const write = zombie.write(owned(3, 1, 0, 10));
    await inside; // the zombie's rows are in, uncommitted, with the ledger row locked
    let claimed = false;
    const claim = successor.claim!({ job: JOB, topic: 'clicks', partition: 3, epoch: 2 }).then(() => { claimed = true; });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(claimed).toBe(false);
    release();
    await write;
    await claim;
    await successor.write(owned(3, 2, 0, 10, 1)); // the planned range, rerun: already there
    await expect(zombie.write(owned(3, 1, 10, 20, 2))).rejects.toThrow(PartitionFencedError);
    await successor.write(owned(3, 2, 10, 20, 2));
    await Promise.all([zombie.close(), successor.close()]);
    expect(await held(3)).toEqual(range(0, 20));
    expect(await ledger(3)).toEqual({ epoch: 2, until: 20 });
  });

  it('two owners racing on one range: one wins, the other is fenced or finds a duplicate; every offset is held once', async () => {
    for (let p = 10; p < 30; p++) {
      const old = sink();
      const next = sink();
      await old.claim!({ job: JOB, topic: 'clicks', partition: p, epoch: 4 });
      const [first, second] = await Promise.all([
        settle(old.write(owned(p, 4, 0, 50))),
        settle(next.claim!({ job: JOB, topic: 'clicks', partition: p, epoch: 5 }).then(() => next.write(owned(p, 5, 0, 50, 9)))),
      ]);
      expect(second).toBe('ok');
      if (first !== 'ok') expect(first).toBeInstanceOf(PartitionFencedError);
      await Promise.all([old.close(), next.close()]);
      expect(await held(p)).toEqual(range(0, 50));
      expect(await ledger(p)).toEqual({ epoch: 5, until: 50 });
    }
  });

  it('daemons starting at once on a fresh schema create the ledger tables (and the ledger schema) once, none failing on the race', async () => {
    // Group mode's daemons claim their first partitions at the same moment: each sink creates the
    // tables it needs. Fresh schemas, so every round races on the creation again.
    for (let round = 0; round < 4; round++) {
      const schema = `${db.schema}_race${round}`;
      const sinks = Array.from({ length: 6 }, (_, i) => postgresSink<Row>({
        connection: db.config, name: `out${i % 2}`, mode: 'custom', apply: async () => {}, ledger: { schema },
      }));
      const results = await Promise.all(sinks.map((s, i) => settle(s.claim!({ job: JOB, topic: 'clicks', partition: i, epoch: 1 }))));
      expect(results).toEqual(sinks.map(() => 'ok'));
      const batches = await Promise.all(sinks.map((s, i) => settle(s.write({ id: 1, job: `${JOB}-${i}`, ranges: [{ topic: 'clicks', partition: 0, from: 0, until: 1 }], outputs: [] }))));
      expect(batches).toEqual(sinks.map(() => 'ok'));
      await Promise.all(sinks.map((s) => s.close()));
      expect(await db.query(`SELECT count(*)::int AS n FROM "${schema}".tidemark_partition_ledger`)).toEqual([{ n: 6 }]);
      expect(await db.query(`SELECT count(*)::int AS n FROM "${schema}".tidemark_ledger`)).toEqual([{ n: 6 }]);
      await db.query(`DROP SCHEMA "${schema}" CASCADE`);
    }
  });
});
