// The soak (issue 17): a daemon watched for an hour. A producer appends to an embedded log at
// a fixed rate; the job (in this process, as `tidemark run` runs it) writes every record to
// the rolling file sink, and to PostgreSQL when --pg-url / PG_URL is set. Every --sample-s
// (default 10 s) it samples RSS, heap, GC pause p99 (perf_hooks), checkpoint bytes, part files,
// open fds, listeners, metric series, lag and batch duration; at the end it fits a line to
// each series (after a warm-up), prints start/end/slope with a verdict, and writes a JSON
// report and an SVG plot.
//
//   npm run soak -- --minutes 60 [--rate 2000] [--out bench/soak] [--pg-url URL] [--sample-s 10]
//
// The producer shares the process, so RSS and GC include its share; it appends in slices
// every 100 ms and keeps nothing.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'pg';
import { sizeOnDisk } from '../checkpoint/store';
import { Metrics } from '../src/metrics';
import { defineJob, EmbeddedLog, embeddedLogSource, Engine, postgresSink, rollingFileSink, type BatchStats, type Sink } from '../src/index';
import { svgPlot } from './svg-plot';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string' }, rate: { type: 'string' }, out: { type: 'string' }, 'pg-url': { type: 'string' }, 'sample-s': { type: 'string' },
    'keep-data': { type: 'boolean' },
  },
});
const MINUTES = Number(args.minutes ?? 60);
const RATE = Number(args.rate ?? 2000);
const SAMPLE_MS = Number(args['sample-s'] ?? 10) * 1000;
const OUT = args.out ?? join(__dirname, 'soak');
const PG_URL = args['pg-url'] ?? process.env.PG_URL;
const PARTITIONS = 4;

interface Sample {
  readonly minute: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly gcP99Ms: number;
  readonly checkpointKiB: number;
  readonly partFiles: number;
  readonly fds: number;
  readonly listeners: number;
  readonly metricSeries: number;
  readonly lag: number;
  readonly batchMsP50: number;
  readonly batchMsP99: number;
  readonly recordsPerS: number;
  readonly eventLoopP99Ms: number;
}

/** What each series may grow by over the run (after warm-up) and still count as flat. */
const FLAT: Partial<Record<keyof Sample, { readonly relative: number; readonly absolute: number; readonly unit: string }>> = {
  rssMiB: { relative: 0.1, absolute: 16, unit: 'MiB' },
  heapMiB: { relative: 0.15, absolute: 8, unit: 'MiB' },
  gcP99Ms: { relative: 0.5, absolute: 5, unit: 'ms' },
  checkpointKiB: { relative: 0.2, absolute: 1024, unit: 'KiB' },
  fds: { relative: 0, absolute: 2, unit: 'fds' },
  listeners: { relative: 0, absolute: 1, unit: '' },
  metricSeries: { relative: 0, absolute: 8, unit: 'series' }, // prom-client's default metrics come and go by GC kind and handle type
  lag: { relative: 0.5, absolute: RATE, unit: 'records' },
  batchMsP99: { relative: 0.5, absolute: 20, unit: 'ms' },
};

const quantile = (values: readonly number[], q: number): number => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const round = (v: number, digits = 2): number => Math.round(v * 10 ** digits) / 10 ** digits;

/** Least-squares slope of y over x. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const sxx = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return sxx === 0 ? 0 : points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / sxx;
}

function listeners(): number {
  return ['exit', 'SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection', 'warning'].reduce((n, e) => n + process.listenerCount(e), 0);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'tidemark-soak-'));
  const logDir = join(work, 'log');
  const checkpointDir = join(work, 'checkpoint');
  const sinkDir = join(work, 'out');
  const log = await EmbeddedLog.open(logDir, { topic: 'soak', partitions: PARTITIONS });
  const filler = randomBytes(40).toString('hex');

  let pool: Pool | undefined;
  const table = `soak_${randomBytes(4).toString('hex')}`;
  interface Out { readonly p: number; readonly o: number; readonly v: string }
  const sinks: Array<Sink<Out>> = [rollingFileSink<Out>({ dir: sinkDir, name: 'parts', maxPartBytes: 4 << 20, maxPartAgeMs: 60_000, gzip: true })];
  if (PG_URL) {
    pool = new Pool({ connectionString: PG_URL, max: 1 });
    await pool.query(`CREATE TABLE ${table} (p int NOT NULL, o bigint NOT NULL, v text NOT NULL)`);
    sinks.push(postgresSink<Out>({
      name: 'postgres', connection: PG_URL, table, columns: ['p', 'o', 'v'], row: (t) => [t.p, t.o, t.v], ledger: { table: `${table}_ledger` },
    }));
  }
  const job = defineJob<Out>({
    name: table, // unique: the PostgreSQL ledger is keyed by job
    source: embeddedLogSource({ dir: logDir, topic: 'soak' }),
    sinks,
    transform: (records) => records.map((r) => ({ p: r.partition, o: r.offset, v: r.value!.toString() })),
    batch: { maxWaitMs: 50, pollIntervalMs: 50 },
    checkpoint: { retainBatches: 100 },
  });

  const gcPauses: number[] = [];
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcPauses.push(e.duration);
  });
  gc.observe({ entryTypes: ['gc'] });
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();

  let durations: number[] = [];
  let records = 0;
  let totalRecords = 0;
  let totalBatches = 0;
  const metrics = new Metrics({ engine: { status: () => engine.status(), checkpoint: () => engine.checkpoint() }, checkpointDir, job: 'soak' });
  const engine: Engine<Out> = new Engine(job, {
    checkpointDir,
    onBatch: (stats: BatchStats) => {
      metrics.observe(stats);
      durations.push(Object.values(stats.durations).reduce((a, b) => a + b, 0));
      records += stats.records;
      totalRecords += stats.records;
      totalBatches++;
    },
  });

  // The producer: RATE records/s in slices every 100 ms, keyed round the partitions. One append
  // at a time: overlapping appends of one process wait on the log's lock file, and under load
  // (a 10-minute run, 2026-11-30) they ran out of its retries. A slice that is late is caught
  // up by the next one.
  let produced = 0;
  let appending = false;
  let appendErrors = 0;
  const started = Date.now();
  const producer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * RATE) - produced;
    if (due <= 0 || appending) return;
    const slice = Array.from({ length: due }, (_, i) => ({ key: `k${(produced + i) % 997}`, value: `{"n":${produced + i},"f":"${filler}"}` }));
    appending = true;
    log.append(slice).then(() => {
      produced += due;
    }, (err: unknown) => {
      appendErrors++;
      console.error(`append failed (${appendErrors}): ${String(err)}`);
    }).finally(() => {
      appending = false;
    });
  }, 100);

  const run = engine.run();
  const samples: Sample[] = [];
  const sample = async (): Promise<void> => {
    const mem = process.memoryUsage();
    const lag = Object.values(engine.status().lag).reduce((a, b) => a + b, 0);
    const series = (await metrics.registry.getMetricsAsJSON()).reduce((n, m) => n + m.values.length, 0);
    let partFiles = 0;
    try {
      partFiles = readdirSync(join(sinkDir, 'parts')).filter((f) => f.startsWith('part-')).length;
    } catch {
      partFiles = 0;
    }
    const s: Sample = {
      minute: round((Date.now() - started) / 60_000, 3),
      rssMiB: round(mem.rss / 2 ** 20, 1), heapMiB: round(mem.heapUsed / 2 ** 20, 1), gcP99Ms: round(quantile(gcPauses, 0.99)),
      checkpointKiB: round((await sizeOnDisk(checkpointDir)) / 1024, 1), partFiles, fds: readdirSync('/proc/self/fd').length,
      listeners: listeners(), metricSeries: series, lag, batchMsP50: round(quantile(durations, 0.5)), batchMsP99: round(quantile(durations, 0.99)),
      recordsPerS: round(records / (SAMPLE_MS / 1000), 0), eventLoopP99Ms: round(loop.percentile(99) / 1e6),
    };
    gcPauses.length = 0;
    durations = [];
    records = 0;
    loop.reset();
    samples.push(s);
    console.log(JSON.stringify(s));
  };
  const sampler = setInterval(() => {
    sample().catch((err: unknown) => console.error(`sample failed: ${String(err)}`)); // a missed sample must not end an hour's run
  }, SAMPLE_MS);
  await new Promise((r) => setTimeout(r, MINUTES * 60_000));
  clearInterval(sampler);
  clearInterval(producer);
  while (appending) await new Promise((r) => setTimeout(r, 10));
  engine.stop();
  const summary = await run;
  gc.disconnect();
  loop.disable();
  await metrics.close();

  // The fit skips a warm-up (the first tenth, at least one sample) so start-up allocations do not read as growth.
  const warm = samples.slice(Math.max(1, Math.floor(samples.length / 10)));
  const keys = Object.keys(samples[0] ?? {}).filter((k) => k !== 'minute') as Array<keyof Sample>;
  const series = Object.fromEntries(keys.map((key) => {
    const points = warm.map((s) => [s.minute, s[key]] as const);
    const perHour = slope(points) * 60;
    const start = warm[0]?.[key] ?? 0;
    const end = warm[warm.length - 1]?.[key] ?? 0;
    const span = (warm[warm.length - 1]?.minute ?? 0) - (warm[0]?.minute ?? 0);
    const growth = (perHour / 60) * span;
    const median = quantile(warm.map((s) => s[key]), 0.5);
    const flat = FLAT[key];
    const verdict = key === 'partFiles' ? 'grows with the data, by design (one file per part per roll)'
      : !flat ? 'measured'
        : growth <= Math.max(flat.absolute, flat.relative * median) ? 'flat' : `GROWS (${round(growth)} ${flat.unit} over the run)`;
    return [key, { start, end, median, slopePerHour: round(perHour, 3), verdict }];
  }));
  const growing = Object.entries(series).filter(([, s]) => s.verdict.startsWith('GROWS')).map(([k]) => k);
  const report = {
    at: new Date(started).toISOString(), minutes: MINUTES, rate: RATE, partitions: PARTITIONS, postgres: PG_URL !== undefined, node: process.version,
    produced, appendErrors, processed: totalRecords, batches: totalBatches, lastCommitted: summary.lastCommitted,
    verdict: growing.length === 0 ? 'flat: no series grows' : `growing: ${growing.join(', ')}`, series, samples,
  };
  mkdirSync(OUT, { recursive: true });
  const stamp = report.at.replace(/[:.]/g, '-');
  const jsonPath = join(OUT, `soak-${stamp}.json`);
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 1)}\n`);
  const plotted: Array<[keyof Sample, string, string]> = [
    ['rssMiB', 'RSS', 'MiB'], ['heapMiB', 'heap used', 'MiB'], ['gcP99Ms', 'GC pause p99 per sample', 'ms'], ['checkpointKiB', 'checkpoint', 'KiB'],
    ['partFiles', 'finished part files', 'files'], ['fds', 'open fds', 'fds'], ['lag', 'lag', 'records'], ['batchMsP99', 'batch duration p99', 'ms'],
  ];
  const svgPath = join(OUT, `soak-${stamp}.svg`);
  writeFileSync(svgPath, svgPlot(`tidemark soak ${report.at}: ${MINUTES} min, ${RATE} records/s${PG_URL ? ', + PostgreSQL' : ''}`,
    plotted.map(([key, label, unit]) => ({ label, unit, points: samples.map((s) => [s.minute, s[key]] as const) }))));

  console.log(`\n${'series'.padEnd(16)}${'start'.padStart(10)}${'end'.padStart(10)}${'slope/h'.padStart(12)}  verdict`);
  for (const [key, s] of Object.entries(series)) console.log(`${key.padEnd(16)}${String(s.start).padStart(10)}${String(s.end).padStart(10)}${String(s.slopePerHour).padStart(12)}  ${s.verdict}`);
  console.log(`\n${produced} produced, ${totalRecords} processed in ${totalBatches} batches; ${report.verdict}`);
  console.log(`report: ${jsonPath}\nplot:   ${svgPath}`);

  if (pool) {
    await pool.query(`DROP TABLE ${table}, ${table}_ledger`);
    await pool.end();
  }
  if (!args['keep-data']) rmSync(work, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
