// The two sink examples, run the way a user runs them (`tidemark run examples/…/job.ts`)
// against the real broker and a PostgreSQL server of this file's own, each killed once
// right after its sink's write (before the checkpoint commit) and restarted.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { openCheckpoint } from '../../checkpoint/store';
import { click, createTable, seedTopic } from '../../examples/kafka-to-postgres/clicks';
import { brokers, closeClients, createTopic, readTopic, uniqueTopic } from '../support/kafka';
import { privateServer } from '../support/postgres';
import { killAll, runTidemark } from '../support/processes';
import { duplicates } from './sink-support';

const pg = privateServer();
afterAll(async () => {
  killAll();
  await closeClients();
});

async function runUntilDone(job: string, env: Record<string, string>, crashAt?: string): Promise<void> {
  if (crashAt) {
    const crashed = await runTidemark(['run', job, '--once', '--log-level', 'warn'], { ...env, TIDEMARK_CRASH_AT: crashAt });
    expect({ signal: crashed.signal, stderr: crashed.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
  }
  const done = await runTidemark(['run', job, '--once', '--log-level', 'warn'], env);
  expect({ code: done.code, stderr: done.stderr }).toEqual({ code: 0, stderr: '' });
}

function expectedCounts(events: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let n = 0; n < events; n++) counts.set(click(n).user, (counts.get(click(n).user) ?? 0) + 1);
  return counts;
}

it('examples/kafka-to-postgres: per-user counts upserted exactly once across a crash after the write', async () => {
  const topic = uniqueTopic('ex-clicks');
  await createTable(pg.url());
  await seedTopic(brokers(), topic, 0, 20_000);
  const env = {
    KAFKA_BROKERS: brokers().join(','), PG_URL: pg.url(), TOPIC: topic, GROUP_ID: `${topic}-job`,
    KAFKA_TO_POSTGRES_DATA: mkdtempSync(join(tmpdir(), 'tidemark-ex-k2p-')),
  };
  await runUntilDone('examples/kafka-to-postgres/job.ts', env, 'delivered:user-clicks');
  await seedTopic(brokers(), topic, 20_000, 10_000); // more events: the next run adds their counts
  await runUntilDone('examples/kafka-to-postgres/job.ts', env, 'delivered:user-clicks');

  const pool = new Pool({ connectionString: pg.url() });
  try {
    const rows = (await pool.query<{ user_id: string; clicks: string }>('SELECT user_id, clicks FROM user_clicks')).rows;
    expect(new Map(rows.map((r) => [r.user_id, Number(r.clicks)]))).toEqual(expectedCounts(30_000));
    // One ledger row per committed batch: the batch redelivered after each crash wrote none twice.
    const store = await openCheckpoint(join(env.KAFKA_TO_POSTGRES_DATA, 'checkpoint'), { readOnly: true });
    const { lastCommitted } = await store.load();
    await store.close();
    const ledger = (await pool.query<{ n: string }>("SELECT count(*) AS n FROM tidemark_ledger WHERE job = 'kafka-to-postgres'")).rows[0]!;
    expect(lastCommitted).toBeGreaterThanOrEqual(2);
    expect(Number(ledger.n)).toBe(lastCommitted);
  } finally {
    await pool.end();
  }
});

it('examples/kafka-to-kafka: every record enriched and forwarded exactly once across a crash after the transaction', async () => {
  const input = uniqueTopic('ex-in');
  const output = uniqueTopic('ex-enriched');
  await seedTopic(brokers(), input, 0, 20_000);
  await createTopic(output, 4);
  const env = {
    KAFKA_BROKERS: brokers().join(','), TOPIC: input, OUT_TOPIC: output, GROUP_ID: `${input}-job`,
    KAFKA_TO_KAFKA_DATA: mkdtempSync(join(tmpdir(), 'tidemark-ex-k2k-')),
  };
  await runUntilDone('examples/kafka-to-kafka/job.ts', env, 'delivered:enriched');

  const got = await readTopic(brokers(), output);
  expect(got).toHaveLength(20_000);
  const lineage = got.map((r) => `${r.headers['tidemark.source.partition']}@${r.headers['tidemark.source.offset']}`);
  expect(duplicates(lineage)).toEqual({});
  for (const r of got) {
    const e = JSON.parse(r.value!) as { user: string; page: string; section: string; at: string };
    expect(r.key).toBe(e.user);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['tidemark.source.topic']).toBe(input);
    expect(e.section).toBe({ '/product': 'shop', '/cart': 'shop', '/checkout': 'shop', '/help': 'support' }[e.page] ?? 'browse');
    expect(Number.isNaN(Date.parse(e.at))).toBe(false);
  }
  const perUser = new Map<string, number>();
  for (const r of got) perUser.set(r.key!, (perUser.get(r.key!) ?? 0) + 1);
  expect(perUser).toEqual(expectedCounts(20_000));
});
