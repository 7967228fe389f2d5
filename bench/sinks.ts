// Sink throughput at 10k-row batches: the same outputs written by the file sink, the
// PostgreSQL sink (insert and upsert) and the Kafka sink (no compression and lz4), each
// batch a fresh id as the engine delivers them, so every write is a real one (ledger row
// and rows in one transaction; one Kafka transaction with the ledger offset).
//
//   node scripts/run-ts.js bench/sinks.ts [--batches 30] [--rows 10000]
//
// Servers: PG_URL and KAFKA_BROKERS when set; otherwise it starts a throw-away PostgreSQL
// (scripts/postgres) and Kafka broker (scripts/kafka) in a temp dir and stops them after.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { Pool } from 'pg';
import { fileSink, kafkaSink, postgresSink, type Sink } from 'tidemark';

interface Click { readonly user: string; readonly page: string; readonly n: number; readonly at: number }

const root = join(__dirname, '..');
const { values: args } = parseArgs({ options: { batches: { type: 'string' }, rows: { type: 'string' } } });
const BATCHES = Number(args.batches ?? 30);
const ROWS = Number(args.rows ?? 10_000);

const work = mkdtempSync(join(tmpdir(), 'tidemark-bench-sinks-'));
chmodSync(work, 0o755);
const stops: Array<() => void> = [];

function server(script: string, envVar: string, dirVar: string): string {
  if (process.env[envVar]) return process.env[envVar]!;
  const env: NodeJS.ProcessEnv = { ...process.env, [dirVar]: join(work, script) };
  const run = (cmd: string): string => execFileSync('bash', [join(root, 'scripts', script), cmd], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
  const url = run('start');
  stops.push(() => run('stop'));
  return url;
}

function batchOf(b: number): Click[] {
  return Array.from({ length: ROWS }, (_, i) => {
    const n = b * ROWS + i;
    return { user: `u${n % 5000}`, page: `/page/${n % 97}`, n, at: 1_700_000_000_000 + n };
  });
}

interface Result { readonly sink: string; readonly rows: number; readonly seconds: number; readonly medianMs: number }

async function measure(label: string, sink: Sink<Click>): Promise<Result> {
  const ranges = (id: number) => [{ topic: 'bench', partition: 0, from: (id - 1) * ROWS, until: id * ROWS }];
  await sink.write({ id: 1, job: 'bench', ranges: ranges(1), outputs: batchOf(0) }); // warm-up: connections, ledger, metadata
  const times: number[] = [];
  const started = performance.now();
  for (let b = 1; b <= BATCHES; b++) {
    const outputs = batchOf(b);
    const t = performance.now();
    await sink.write({ id: b + 1, job: 'bench', ranges: ranges(b + 1), outputs });
    times.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  await sink.close?.();
  times.sort((x, y) => x - y);
  return { sink: label, rows: BATCHES * ROWS, seconds, medianMs: times[Math.floor(times.length / 2)]! };
}

async function main(): Promise<void> {
  const pgUrl = server('postgres', 'PG_URL', 'TIDEMARK_PG_DIR');
  const brokers = server('kafka', 'KAFKA_BROKERS', 'TIDEMARK_KAFKA_DIR').split(',');
  const schema = `bench_${process.pid}`;
  const pool = new Pool({ connectionString: pgUrl });
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query(`CREATE TABLE ${schema}.clicks (user_id text NOT NULL, page text NOT NULL, n bigint NOT NULL, at bigint NOT NULL)`);
  await pool.query(`CREATE TABLE ${schema}.last_click (user_id text PRIMARY KEY, page text NOT NULL, n bigint NOT NULL, at bigint NOT NULL)`);
  const connection = { connectionString: pgUrl, options: `-c search_path=${schema}` };
  const kafka = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING }).admin();
  await kafka.connect();
  const topics = [`bench-sink-${process.pid}-none`, `bench-sink-${process.pid}-lz4`];
  await kafka.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 4 })), waitForLeaders: true });
  await kafka.disconnect();
  const columns = ['user_id', 'page', 'n', 'at'];
  const row = (c: Click) => [c.user, c.page, c.n, c.at];

  const results: Result[] = [];
  try {
    results.push(await measure('file (JSON lines, temp file + rename)', fileSink<Click>({ dir: join(work, 'files') })));
    results.push(await measure('postgres insert', postgresSink<Click>({ connection, name: 'pg-insert', table: 'clicks', columns, row })));
    results.push(await measure('postgres upsert (5,000 keys)', postgresSink<Click>({ connection, name: 'pg-upsert', table: 'last_click', mode: 'upsert', key: ['user_id'], columns, row })));
    results.push(await measure('kafka (no compression)', kafkaSink<Click>({ brokers, topic: topics[0]!, name: 'kafka-none', message: (c) => ({ key: c.user, value: JSON.stringify(c) }) })));
    results.push(await measure('kafka (lz4)', kafkaSink<Click>({ brokers, topic: topics[1]!, name: 'kafka-lz4', compression: 'lz4', message: (c) => ({ key: c.user, value: JSON.stringify(c) }) })));
  } finally {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => {});
    await pool.end();
  }

  console.log(`\n${BATCHES} batches of ${ROWS} rows (after one warm-up batch), Node ${process.versions.node}\n`);
  console.log(`${'sink'.padEnd(40)} ${'rows/s'.padStart(10)} ${'ms/batch (median)'.padStart(18)}`);
  for (const r of results) {
    console.log(`${r.sink.padEnd(40)} ${Math.round(r.rows / r.seconds).toLocaleString('en-US').padStart(10)} ${r.medianMs.toFixed(1).padStart(18)}`);
  }
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const stop of stops.reverse()) stop();
    rmSync(work, { recursive: true, force: true });
  });
