// The PostgreSQL sink against a real server: the ledger makes redelivery harmless in every
// mode, concurrent deliveries of one batch write it once, and a checkpoint that does not
// match the ledger is refused.
import { Pool } from 'pg';
import { postgresSink, SinkLedgerMismatchError, SinkRejectedError, type SinkBatch } from 'tidemark';
import { checkIdempotentSink } from 'tidemark/testing';
import { testSchema } from '../support/postgres';

const db = testSchema('sink');
const ranges = (id: number) => [{ topic: 'clicks', partition: 0, from: (id - 1) * 10, until: id * 10 }];
const batch = <T>(id: number, outputs: T[], job = 'job-a'): SinkBatch<T> => ({ id, job, ranges: ranges(id), outputs });

interface Click { readonly id: number; readonly user: string; readonly page: string }
const clicks = (from: number, n: number): Click[] => Array.from({ length: n }, (_, i) => ({ id: from + i, user: `u${(from + i) % 7}`, page: `/p${(from + i) % 3}` }));

describe('postgresSink, mode insert', () => {
  beforeAll(async () => {
    await db.query('CREATE TABLE clicks (id int PRIMARY KEY, user_id text NOT NULL, page text NOT NULL)');
  });

  it('writes rows and the ledger row in one transaction; a redelivery (same or new instance) does nothing', async () => {
    const make = () => postgresSink<Click>({
      connection: db.config, table: 'clicks', columns: ['id', 'user_id', 'page'], row: (c) => [c.id, c.user, c.page],
    });
    const a = make();
    await a.write(batch(1, clicks(0, 50)));
    await a.write(batch(1, clicks(0, 50)));
    const b = make();
    await b.write(batch(1, clicks(0, 50)));
    await b.write(batch(2, clicks(50, 30)));
    await Promise.all([a.close(), b.close()]);

    const rows = await db.query<{ n: string; d: string }>('SELECT count(*) AS n, count(DISTINCT id) AS d FROM clicks');
    expect(rows[0]).toEqual({ n: '80', d: '80' });
    const ledger = await db.query('SELECT job, sink, batch_id::int AS batch_id, ranges FROM tidemark_ledger ORDER BY batch_id');
    expect(ledger).toEqual([
      { job: 'job-a', sink: 'postgres', batch_id: 1, ranges: ranges(1) },
      { job: 'job-a', sink: 'postgres', batch_id: 2, ranges: ranges(2) },
    ]);
  });

  it('two instances delivering the same batch at once (a zombie and its successor) write it once', async () => {
    const make = () => postgresSink<Click>({ connection: db.config, name: 'race', table: 'clicks', columns: ['id', 'user_id', 'page'], row: (c) => [c.id, c.user, c.page] });
    const sinks = [make(), make(), make()];
    for (let id = 1; id <= 5; id++) {
      const outputs = clicks(10_000 + id * 100, 100);
      await Promise.all(sinks.map((s) => s.write(batch(id, outputs))));
    }
    await Promise.all(sinks.map((s) => s.close()));
    const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM clicks WHERE id >= 10000');
    expect(rows[0]!.n).toBe('500');
  });

  it('refuses a batch whose id the ledger holds with other ranges, or when the ledger holds a later batch', async () => {
    const sink = postgresSink<Click>({ connection: db.config, name: 'mismatch', table: 'clicks', columns: ['id', 'user_id', 'page'], row: (c) => [c.id, c.user, c.page] });
    await sink.write(batch(3, clicks(20_000, 5)));
    const other = { ...batch(3, clicks(20_100, 5)), ranges: [{ topic: 'clicks', partition: 0, from: 0, until: 5 }] };
    await expect(sink.write(other)).rejects.toThrow(SinkLedgerMismatchError);
    await expect(sink.write(batch(2, clicks(20_200, 5)))).rejects.toThrow(/already holds a later batch \(3\)/);
    await sink.close();
    const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM clicks WHERE id >= 20000');
    expect(rows[0]!.n).toBe('5');
  });

  it('keys the ledger by job: two jobs with the same sink name do not meet', async () => {
    const make = () => postgresSink<Click>({ connection: db.config, name: 'shared', table: 'clicks', columns: ['id', 'user_id', 'page'], row: (c) => [c.id, c.user, c.page] });
    const s = make();
    await s.write(batch(1, clicks(30_000, 3), 'job-x'));
    await s.write(batch(1, clicks(30_010, 3), 'job-y'));
    await s.close();
    const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM clicks WHERE id >= 30000');
    expect(rows[0]!.n).toBe('6');
  });

  it('a constraint violation rolls everything back and names the batch and every rejected row', async () => {
    const sink = postgresSink<Click>({ connection: db.config, name: 'strict', table: 'clicks', columns: ['id', 'user_id', 'page'], row: (c) => [c.id, c.user, c.page] });
    const outputs = clicks(40_000, 200);
    const bad: Click[] = [...outputs.slice(0, 70), { id: 40_005, user: 'dup', page: '/x' }, ...outputs.slice(70, 150), { id: 40_999, user: null as unknown as string, page: '/y' }, ...outputs.slice(150)];
    const err = await sink.write(batch(1, bad)).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SinkRejectedError);
    const rejected = (err as SinkRejectedError).rejected;
    expect(rejected.map((r) => r.index)).toEqual([70, 151]);
    expect(rejected[0]!.reason).toMatch(/duplicate key value violates unique constraint "clicks_pkey".*23505/);
    expect(rejected[1]!.reason).toMatch(/null value in column "user_id".*23502/);
    expect((err as Error).message).toMatch(/batch 1: output #70 \{"id":40005,"user":"dup","page":"\/x"\}: duplicate key/);
    const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM clicks WHERE id >= 40000');
    expect(rows[0]!.n).toBe('0');
    const ledger = await db.query("SELECT * FROM tidemark_ledger WHERE sink = 'strict'");
    expect(ledger).toEqual([]);
    // The rest goes through as a batch of its own content with the same id (what the engine does under 'dead-letter').
    await sink.write(batch(1, bad.filter((_, i) => i !== 70 && i !== 151)));
    await sink.close();
    expect((await db.query<{ n: string }>('SELECT count(*) AS n FROM clicks WHERE id >= 40000'))[0]!.n).toBe('200');
  });

  it('a missing table is a configuration error, not retried', async () => {
    const sink = postgresSink<Click>({ connection: db.config, name: 'nowhere', table: 'no_such_table', columns: ['id'], row: (c) => [c.id] });
    await expect(sink.write(batch(1, clicks(0, 1)))).rejects.toThrow(/postgresSink nowhere cannot write batch 1: relation "no_such_table" does not exist \(SQLSTATE 42P01\)/);
    await sink.close();
  });

  it('passes the sink check: every batch delivered twice, by the same and by restarted instances, and concurrently', async () => {
    await db.query('CREATE TABLE checked (id int PRIMARY KEY, user_id text, page text)');
    const batches = Array.from({ length: 8 }, (_, i) => clicks(i * 100, 40 + i));
    const report = await checkIdempotentSink<Click>({
      sink: () => postgresSink<Click>({ connection: db.config, name: 'checked', table: 'checked', columns: ['id', 'user_id', 'page'], row: (c) => [c.id, c.user, c.page] }),
      batches,
      read: async () => (await db.query('SELECT id, user_id AS user, page FROM checked')),
      concurrent: true,
    });
    expect(report.writes).toBe(16);
    expect(report.instances).toBeGreaterThan(3);
  });
});

describe('postgresSink, mode upsert', () => {
  beforeAll(async () => {
    await db.query('CREATE TABLE user_clicks (user_id text PRIMARY KEY, clicks bigint NOT NULL, last_page text)');
  });

  it('accumulates per key with an update expression; rows with one key in one batch apply in order; redelivery adds nothing', async () => {
    const make = () => postgresSink<{ user: string; clicks: number; page: string }>({
      connection: db.config, name: 'counts', table: 'user_clicks', mode: 'upsert',
      columns: ['user_id', 'clicks', 'last_page'], key: ['user_id'], row: (o) => [o.user, o.clicks, o.page],
      update: { clicks: 'user_clicks.clicks + EXCLUDED.clicks', last_page: 'EXCLUDED.last_page' },
    });
    const b1 = [{ user: 'ann', clicks: 2, page: '/a' }, { user: 'bob', clicks: 1, page: '/b' }, { user: 'ann', clicks: 3, page: '/c' }];
    const b2 = [{ user: 'bob', clicks: 4, page: '/d' }, { user: 'cy', clicks: 1, page: '/e' }];
    const sink = make();
    await sink.write(batch(1, b1));
    await sink.write(batch(1, b1));
    await sink.close();
    const again = make();
    await again.write(batch(2, b2));
    await again.write(batch(2, b2));
    await again.close();
    const rows = await db.query('SELECT user_id, clicks::int AS clicks, last_page FROM user_clicks ORDER BY user_id');
    expect(rows).toEqual([
      { user_id: 'ann', clicks: 5, last_page: '/c' },
      { user_id: 'bob', clicks: 5, last_page: '/d' },
      { user_id: 'cy', clicks: 1, last_page: '/e' },
    ]);
  });

  it('replaces non-key columns by default, and passes the sink check', async () => {
    await db.query('CREATE TABLE latest (k text PRIMARY KEY, v int)');
    const batches = Array.from({ length: 6 }, (_, b) => Array.from({ length: 20 }, (_, i) => ({ k: `k${(b * 7 + i) % 11}`, v: b * 100 + i })));
    const expected = (delivered: ReadonlyArray<ReadonlyArray<{ k: string; v: number }>>) => {
      const last = new Map<string, number>();
      for (const o of delivered.flat()) last.set(o.k, o.v);
      return [...last].map(([k, v]) => ({ k, v }));
    };
    await checkIdempotentSink({
      sink: () => postgresSink<{ k: string; v: number }>({ connection: db.config, name: 'latest', table: 'latest', mode: 'upsert', columns: ['k', 'v'], key: ['k'] }),
      batches, expected, read: () => db.query('SELECT k, v FROM latest'),
    });
  });
});

describe('postgresSink, mode custom', () => {
  it('runs the callback with the transaction client; its writes and the ledger commit together', async () => {
    await db.query('CREATE TABLE events (id int PRIMARY KEY, body jsonb)');
    await db.query('CREATE TABLE totals (name text PRIMARY KEY, n bigint)');
    await db.query("INSERT INTO totals VALUES ('events', 0)");
    const calls: number[] = [];
    const make = () => postgresSink<{ id: number; body: object }>({
      connection: db.config, name: 'custom', mode: 'custom',
      apply: async (client, b) => {
        calls.push(b.id);
        for (const o of b.outputs) await client.query('INSERT INTO events VALUES ($1, $2)', [o.id, JSON.stringify(o.body)]);
        await client.query("UPDATE totals SET n = n + $1 WHERE name = 'events'", [b.outputs.length]);
      },
    });
    const outputs = [{ id: 1, body: { a: [1, 2] } }, { id: 2, body: { b: 'x' } }];
    const s = make();
    await s.write(batch(1, outputs));
    await s.write(batch(1, outputs));
    const restarted = make();
    await restarted.write(batch(1, outputs));
    await Promise.all([s.close(), restarted.close()]);
    expect(calls).toEqual([1]);
    expect(await db.query('SELECT id, body FROM events ORDER BY id')).toEqual(outputs.map((o) => ({ id: o.id, body: o.body })));
    expect(await db.query("SELECT n::int AS n FROM totals")).toEqual([{ n: 2 }]);
  });

  it('a ledger in a schema of its own, created with the documented DDL', async () => {
    const ledgerSchema = `${db.schema}_ledger`;
    const sink = postgresSink<{ id: number }>({
      connection: db.config, name: 'elsewhere', mode: 'custom', ledger: { schema: ledgerSchema, table: 'delivered' },
      apply: async () => {},
    });
    expect(sink.ledgerTable).toBe(`"${ledgerSchema}"."delivered"`);
    expect(sink.ledgerDDL).toContain('PRIMARY KEY (job, sink, batch_id)');
    await sink.write(batch(7, [{ id: 1 }]));
    await sink.close();
    const pool = new Pool({ connectionString: db.config.connectionString });
    try {
      const rows = (await pool.query(`SELECT batch_id::int AS batch_id, sink FROM "${ledgerSchema}".delivered`)).rows;
      expect(rows).toEqual([{ batch_id: 7, sink: 'elsewhere' }]);
    } finally {
      await pool.query(`DROP SCHEMA "${ledgerSchema}" CASCADE`);
      await pool.end();
    }
  });
});

describe('postgresSink.lastDelivered', () => {
  beforeAll(async () => {
    await db.query('CREATE TABLE last_clicks (id int PRIMARY KEY, user_id text NOT NULL, page text NOT NULL)');
  });

  it('tells the last batch id its ledger holds for a job (the cross-check at start reads it), none before the ledger exists', async () => {
    const make = (ledger: string) => postgresSink<Click>({
      connection: db.config, name: 'last', ledger: { table: ledger }, table: 'last_clicks', columns: ['id', 'user_id', 'page'], row: (c) => [c.id, c.user, c.page],
    });
    const sink = make('last_ledger');
    expect(await sink.lastDelivered('job-a')).toBeUndefined();
    await sink.write(batch(1, clicks(0, 3)));
    await sink.write(batch(4, clicks(10, 3)));
    expect(await sink.lastDelivered('job-a')).toBe(4);
    expect(await sink.lastDelivered('job-b')).toBeUndefined();
    await sink.close();
  });
});
