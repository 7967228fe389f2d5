// `npm run torture -- --kills 1000 [--source embedded|kafka] [--pg-url URL] [--kafka-sink] [--rolling-sink] [--seed N] [--dir D]`:
// the long form; with `--daemons N [--kill-every MIN,MAX]`, group mode's (test/crash/group-torture.ts),
// whose --pg-url and --kafka-sink add those sinks, checked against the input.
// --pg-url adds the PostgreSQL sink (a fresh schema of that server), --kafka-sink the
// transactional Kafka sink (a fresh topic on KAFKA_BROKERS) and --rolling-sink the rolling file
// sink (gzipped parts of ~16 KiB, so they roll often); after the run each must hold exactly
// what the file sink holds, execution ids and all.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import { brokers, closeClients, createTopic, readTopic, uniqueTopic } from '../support/kafka';
import { rollingLines } from '../support/rolling';
import { embeddedProducer, fileSinkKeys, outputKey, printReport, runTorture, type Producer } from './torture';

/** An extra sink of the run: the daemon's environment for it, its seam points, and its check after the drain. */
interface ExtraSink {
  readonly name: string;
  readonly env: Record<string, string>;
  readonly seamPoints: string[];
  /** Outputs the sink holds, as outputKey()s. */
  keys(): Promise<string[]>;
  close(): Promise<void>;
}

async function postgresSink(url: string): Promise<ExtraSink> {
  const schema = `torture_${randomBytes(4).toString('hex')}`;
  const pool = new Pool({ connectionString: url, options: `-c search_path=${schema}`, max: 1 });
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query('CREATE TABLE torture_out (p int NOT NULL, o int NOT NULL, v text NOT NULL, execution text NOT NULL)');
  return {
    name: `postgres (schema ${schema})`,
    env: { TORTURE_PG_URL: url, TORTURE_PG_SCHEMA: schema },
    seamPoints: ['delivering:postgres', 'delivered:postgres'],
    async keys() {
      const rows = await pool.query<{ p: number; o: number; v: string; execution: string }>('SELECT p, o, v, execution FROM torture_out');
      return rows.rows.map(outputKey).sort();
    },
    close: () => pool.end(),
  };
}

/** The Kafka sink on a fresh topic of the broker in KAFKA_BROKERS. */
async function kafkaSink(): Promise<ExtraSink> {
  const topic = uniqueTopic('torture-sink');
  await createTopic(topic, 4);
  return {
    name: `kafka (topic ${topic}, read_committed)`,
    env: { TORTURE_KAFKA_SINK_TOPIC: topic },
    seamPoints: ['delivering:kafka', 'delivered:kafka'],
    async keys() {
      const records = await readTopic(brokers(), topic);
      return records.map((r) => outputKey(JSON.parse(r.value ?? '{}') as { p: number; o: number; v: string; execution: string })).sort();
    },
    close: closeClients,
  };
}

/** The rolling file sink beside the file sink, in parts small enough to roll every few batches. */
function rollingSink(dir: string): ExtraSink {
  return {
    name: 'rolling (gzipped parts of ~16 KiB)',
    env: { TORTURE_ROLLING: String(16 * 1024) },
    seamPoints: ['delivering:rolling', 'delivered:rolling'],
    keys: async () => rollingLines(join(dir, 'out', 'rolling')).map((l) => outputKey(JSON.parse(l) as Parameters<typeof outputKey>[0])).sort(),
    close: async () => undefined,
  };
}

/** How far `got` is from `expected` (both sorted): outputs missing and outputs extra. */
function difference(expected: readonly string[], got: readonly string[]): { missing: number; extra: number } {
  const want = new Map<string, number>();
  for (const k of expected) want.set(k, (want.get(k) ?? 0) + 1);
  let extra = 0;
  for (const k of got) {
    const n = want.get(k) ?? 0;
    if (n === 0) extra++;
    else want.set(k, n - 1);
  }
  let missing = 0;
  for (const n of want.values()) missing += n;
  return { missing, extra };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kills: { type: 'string' }, source: { type: 'string' }, seed: { type: 'string' }, dir: { type: 'string' },
      'pg-url': { type: 'string' }, 'kafka-sink': { type: 'boolean' }, 'rolling-sink': { type: 'boolean' }, daemons: { type: 'string' }, 'kill-every': { type: 'string' },
    },
  });
  const kills = Number(values.kills ?? 1000);
  if (values.daemons !== undefined) {
    // Group mode (test/crash/group-torture.ts): its report goes beside the single daemon's.
    const { printGroupReport, runGroupTorture } = await import('./group-torture');
    const { checkOutputs, groupPostgres } = await import('../support/group');
    const sinkTopic = values['kafka-sink'] ? uniqueTopic('group-torture-out') : undefined;
    if (sinkTopic) await createTopic(sinkTopic, 3);
    if (values['pg-url']) process.env.PG_URL = values['pg-url'];
    const pg = values['pg-url'] ? await groupPostgres() : undefined;
    const report = await runGroupTorture({
      env: { ...(sinkTopic ? { GROUP_KAFKA_SINK_TOPIC: sinkTopic } : {}), ...pg?.env },
      sinkChecks: [
        ...(sinkTopic ? [{
          name: 'kafka',
          check: async (produced: ReadonlyMap<number, readonly string[]>) => checkOutputs((await readTopic(brokers(), sinkTopic)).map((r) => JSON.parse(r.value ?? '{}') as { p: number; v: string }), produced),
        }] : []),
        ...(pg ? [{ name: 'postgres', check: (produced: ReadonlyMap<number, readonly string[]>) => pg.check(produced) }] : []),
      ],
      kills, daemons: Number(values.daemons), dir: values.dir ?? join(tmpdir(), 'tidemark-torture-group'), brokers: brokers().join(','),
      // `--kill-every MIN,MAX` (ms): spaced kills measure one handoff at a time.
      ...(values['kill-every'] ? { killEveryMs: values['kill-every'].split(',').map(Number) as [number, number] } : {}),
      ...(values.seed ? { seed: Number(values.seed) } : {}), log: (l) => console.log(l),
    });
    console.log(printGroupReport(report, join(__dirname, 'last-group-report.json')));
    await pg?.close();
    await closeClients();
    process.exitCode = Object.values(report.sinks).every((s) => s.lost === 0 && s.duplicated === 0 && s.found === report.produced) ? 0 : 1;
    return;
  }
  const source = values.source ?? 'embedded';
  let producer: (dir: string) => Producer;
  if (source === 'embedded') producer = (dir) => embeddedProducer(dir);
  else if (source === 'kafka') producer = (await import('./torture-kafka')).kafkaProducerFactory();
  else throw new Error(`--source must be embedded or kafka, not ${source}`);

  const extras: ExtraSink[] = [];
  if (values['pg-url']) extras.push(await postgresSink(values['pg-url']));
  if (values['kafka-sink']) extras.push(await kafkaSink());
  const dir = values.dir ?? join(tmpdir(), `tidemark-torture-${source}`);
  if (values['rolling-sink']) extras.push(rollingSink(dir));
  const report = await runTorture({
    kills, producer, dir,
    env: Object.assign({}, ...extras.map((e) => e.env)) as Record<string, string>,
    extraSeamPoints: extras.flatMap((e) => e.seamPoints),
    ...(values.seed ? { seed: Number(values.seed) } : {}), log: (l) => console.log(l),
  });
  console.log(printReport(report));
  let ok = report.lost === 0 && report.duplicated === 0 && report.mixedExecutions === 0 && report.outOfOrder === 0 && !report.inFlightAfterDrain;

  const expected = fileSinkKeys(dir);
  for (const extra of extras) {
    const { missing, extra: surplus } = difference(expected, await extra.keys());
    console.log(`${`sink ${extra.name}`.padEnd(44)} ${missing} missing, ${surplus} extra of ${expected.length} file-sink outputs`);
    if (missing !== 0 || surplus !== 0) ok = false;
    await extra.close();
  }
  process.exitCode = ok ? 0 : 1;
}

void main();
