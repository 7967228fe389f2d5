// The benchmark harness (npm run bench [-- --quick] [-- --spark]). See bench/README.md.
//
// One local broker (scripts/kafka start: reuses the running one), topics produced once per
// workload with Kafka's producer-perf-test, every row a child process (its own CPU / peak RSS
// accounting, printed as the last stdout line), rounds in alternating order (A…Z, then Z…A),
// medians and ratios vs row 2 (raw kafkajs). JSON → bench/results/<ISO time>.json, Markdown table
// → stdout.
//
//   --quick            W1 200k (1 round each way), W2 20k (one run per row); W3 15 s, rows 2 and 3 once; recovery median of 2; no Spark, no row 9
//   --spark            include Spark (row 8) in --quick
//   --rounds N         rounds each way (default 2 → 4 runs per row; --quick 1 → 2 runs)
//   --only w1,w2,w3,recovery   run only these parts
//   KAFKA_BROKERS=host:port    use this broker
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSync } from 'esbuild';
import { Kafka, logLevel } from 'kafkajs';
import * as tidemark from '../src/index';

const root = join(__dirname, '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean' }, spark: { type: 'boolean' }, rounds: { type: 'string' }, only: { type: 'string' },
  },
});
const QUICK = args.quick === true;
const ROUNDS = Number(args.rounds ?? (QUICK ? 1 : 2));
const ONLY = new Set((args.only ?? 'w1,w2,w3,recovery').split(','));
const SPARK = !QUICK || args.spark === true;
const KILLS = QUICK ? 2 : 5;
const RUN_ID = Date.now().toString(36);
const HAS_KAFKA_SINK = typeof (tidemark as Record<string, unknown>).kafkaSink === 'function';
// Row 9 (issue 7's measured note) needs @platformatic/kafka, a devDependency: absent after `npm ci --omit=dev`.
const HAS_PLATFORMATIC = ((): boolean => { try { require.resolve('@platformatic/kafka'); return true; } catch { return false; } })();
const PARTITIONS = 8;
const MAX_BATCH_BYTES = 64 * 1024 * 1024; // the job's default batch.maxBatchBytes

const log = (msg: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); };

interface Summary { records: number; seconds: number; cpuSeconds: number; peakRssMB: number; cpuSecondsAfterStart?: number; bytes?: number; latencyP50Ms?: number; latencyP99Ms?: number; [k: string]: unknown }
interface RowDef { id: number; name: string; run: (w: Workload, round: number) => Promise<Summary> }
interface Workload { id: 'W1' | 'W2' | 'W3'; topic: string; records: number; size: number; embeddedLog?: string; rate?: number; seconds?: number }

function kafkaScript(...a: string[]): string {
  return execFileSync('bash', [join(root, 'scripts', 'kafka'), ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}
const BROKER = process.env.KAFKA_BROKERS ?? kafkaScript('start').trim().split('\n').pop()!.trim();

/** Runs a child to completion; its last non-empty stdout line is the JSON summary. */
function child(cmd: string, argv: string[], opts: { timeoutMs?: number; onStderr?: (s: string) => void } = {}): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PEER_LOG_LEVEL: process.env.PEER_LOG_LEVEL ?? 'warn' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { const s = d.toString(); err = (err + s).slice(-4000); opts.onStderr?.(s); });
    const timer = setTimeout(() => { p.kill('SIGKILL'); }, opts.timeoutMs ?? 600_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
      if (code !== 0) return reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${err.slice(-1500)}`));
      try { resolve(JSON.parse(last) as Summary); } catch { reject(new Error(`${cmd}: no JSON summary; stdout tail: ${last.slice(-300)}; stderr: ${err.slice(-800)}`)); }
    });
  });
}

const NODE_ROW = join(root, 'dist', 'bench', 'rows', 'node-row.js');
const PLATFORMATIC_ROW = join(root, 'dist', 'bench', 'rows', 'platformatic-raw.js');
const nodeRow = (argv: string[], opts: { timeoutMs?: number; onStderr?: (s: string) => void } = {}): Promise<Summary> => child(process.execPath, [NODE_ROW, ...argv], opts);
const peer = (name: string, argv: string[], timeoutMs = 900_000): Promise<Summary> => child(join(root, 'bench', 'peers', name), argv, { timeoutMs });

function buildRows(): void {
  // Bundled once, so a row's CPU figure does not include esbuild's work.
  buildSync({ entryPoints: [join(root, 'bench', 'rows', 'node-row.ts')], bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning', outfile: NODE_ROW });
  // The worker script of `node-row.js --read-worker` (a prototype, not a row of the table).
  buildSync({ entryPoints: [join(root, 'bench', 'rows', 'read-worker.ts')], bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning', outfile: join(root, 'dist', 'bench', 'rows', 'read-worker.js') });
  if (HAS_PLATFORMATIC) buildSync({ entryPoints: [join(root, 'bench', 'rows', 'platformatic-raw.ts')], bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning', outfile: PLATFORMATIC_ROW });
}

const kafka = new Kafka({ clientId: 'bench-run', brokers: [BROKER], logLevel: logLevel.NOTHING });
const admin = kafka.admin();

/** Admin calls right after a topic's creation (or a broker restart) can fail with retriable errors. */
async function retrying<T>(what: string, f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try { return await f(); } catch (e) {
      if (i >= 20) throw e;
      log(`${what}: ${e instanceof Error ? e.message : String(e)}; retrying`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
async function topicTotal(topic: string): Promise<number> {
  return retrying(`offsets of ${topic}`, async () => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0));
}
async function createTopic(topic: string): Promise<void> {
  await retrying(`create ${topic}`, async () => {
    if (!(await admin.listTopics()).includes(topic)) await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true });
  });
  await topicTotal(topic); // every partition has a leader that answers
}
function producePerf(topic: string, records: number, size: number, rate = -1): void {
  kafkaScript('tool', 'producer-perf-test', '--bootstrap-server', BROKER, '--topic', topic, '--num-records', String(records), '--record-size', String(size),
    '--throughput', String(rate), '--command-property', 'acks=1', 'linger.ms=5', 'batch.size=65536');
}
/** The workload's input, produced once (reused by later runs when it already holds the records). */
async function prepare(w: Workload): Promise<void> {
  await createTopic(w.topic);
  const have = await topicTotal(w.topic);
  if (have < w.records) {
    log(`producing ${w.records - have} × ${w.size} B into ${w.topic}`);
    producePerf(w.topic, w.records - have, w.size);
  }
  w.records = await topicTotal(w.topic);
  if (w.id !== 'W3') {
    w.embeddedLog = join(tmpdir(), `tidemark-bench-embedded-${w.records}x${w.size}`);
    await nodeRow(['--row', 'prepare-embedded', '--log', w.embeddedLog, '--records', String(w.records), '--size', String(w.size)]);
  }
}

const median = (xs: number[]): number | null => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---------------------------------------------------------------- rows

const fresh = (w: Workload, row: number, round: number): string => `bench-${RUN_ID}-${w.id.toLowerCase()}-r${row}-${round}`;

const ROWS: RowDef[] = [
  { id: 1, name: 'kafka-consumer-perf-test (broker ceiling)', run: (w) => peer('consumer-perf-test', ['--bootstrap', BROKER, '--topic', w.topic, '--records', String(w.records)]) },
  { id: 2, name: 'raw kafkajs eachBatch', run: (w) => nodeRow(['--row', 'raw', '--bootstrap', BROKER, '--topic', w.topic, '--expect', String(w.records)]) },
  { id: 3, name: 'tidemark Kafka → file, staged', run: (w) => nodeRow(['--row', 'file', '--bootstrap', BROKER, '--topic', w.topic, '--once', '--stage', 'true']) },
  { id: 4, name: 'tidemark Kafka → file, stageOutputs: false', run: (w) => nodeRow(['--row', 'file', '--bootstrap', BROKER, '--topic', w.topic, '--once', '--stage', 'false']) },
  ...(HAS_KAFKA_SINK ? [{
    id: 5, name: 'tidemark Kafka → Kafka (transactional)', run: async (w: Workload, round: number) => {
      const out = fresh(w, 5, round);
      await createTopic(out);
      return nodeRow(['--row', 'kafka', '--bootstrap', BROKER, '--topic', w.topic, '--output', out, '--once', '--stage', 'true']);
    },
  }] : []),
  { id: 6, name: 'tidemark embedded log → file', run: (w) => nodeRow(['--row', 'embedded', '--log', w.embeddedLog!, '--once', '--stage', 'true']) },
  {
    id: 7, name: 'Kafka Streams exactly_once_v2', run: (w, round) => {
      const id = fresh(w, 7, round);
      return peer('kafka-streams/run', ['--bootstrap', BROKER, '--input', w.topic, '--output', id, '--app-id', id, '--expect', String(w.records)]);
    },
  },
  ...(SPARK ? [{
    id: 8, name: 'Spark Structured Streaming (Kafka sink)', run: (w: Workload, round: number) => {
      const id = fresh(w, 8, round);
      return peer('spark/run', ['--bootstrap', BROKER, '--input', w.topic, '--output', id, '--app-id', id, '--expect', String(w.records)]);
    },
  }] : []),
  // Issue 7: row 2's consumer on @platformatic/kafka — how far a faster client would move the ceiling (a note, not a switch).
  ...(HAS_PLATFORMATIC && !QUICK ? [{
    id: 9, name: 'raw @platformatic/kafka consumer (measured note)',
    run: (w: Workload) => child(process.execPath, [PLATFORMATIC_ROW, '--bootstrap', BROKER, '--topic', w.topic, '--expect', String(w.records)]),
  }] : []),
];

interface RowResult { row: number; name: string; runs: Summary[]; errors: string[] }

async function throughput(w: Workload, rounds = 2 * ROUNDS): Promise<RowResult[]> {
  const results = new Map<number, RowResult>(ROWS.map((r) => [r.id, { row: r.id, name: r.name, runs: [], errors: [] }]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ROWS : [...ROWS].reverse();
    for (const r of order) {
      log(`${w.id} round ${round + 1}/${rounds} row ${r.id} (${r.name}) load ${loadavg()[0]!.toFixed(2)}`);
      try {
        const s = await r.run(w, round);
        s.loadAvg1 = +loadavg()[0]!.toFixed(2);
        if (s.records < w.records) { s.short = true; log(`  ! row ${r.id} reported ${s.records} records, the topic holds ${w.records}`); }
        results.get(r.id)!.runs.push(s);
        log(`  → ${s.records} records in ${s.seconds}s, ${s.cpuSeconds} CPU s, ${s.peakRssMB} MB`);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        log(`  → FAILED: ${msg.slice(0, 500)}`);
        results.get(r.id)!.errors.push(msg.slice(0, 2000));
      }
    }
  }
  return [...results.values()];
}

// W3: a fixed input rate, end-to-end latency (record timestamp = producer CreateTime → sink write returned).
// --quick: only raw kafkajs and the default tidemark row (the < 5 minute budget).
const W3_ROWS = QUICK ? [2, 3] : [2, 3, 4, ...(HAS_KAFKA_SINK ? [5] : [])];
async function latency(w: Workload): Promise<RowResult[]> {
  const results = new Map<number, RowResult>(W3_ROWS.map((id) => [id, { row: id, name: ROWS.find((r) => r.id === id)!.name, runs: [], errors: [] }]));
  const n = w.rate! * w.seconds!;
  // --quick: one run per row (2 then 3) — the two W3 runs each way did not fit in 5 minutes here.
  const runs = QUICK ? 1 : 2 * ROUNDS;
  for (let round = 0; round < runs; round++) {
    const order = round % 2 === 0 ? W3_ROWS : [...W3_ROWS].reverse();
    for (const id of order) {
      const topic = `${fresh(w, id, round)}-in`;
      await createTopic(topic);
      const argv = ['--bootstrap', BROKER, '--topic', topic, '--expect', String(n), '--latency'];
      if (id === 2) argv.push('--row', 'raw');
      if (id === 3 || id === 4) argv.push('--row', 'file', '--stage', id === 3 ? 'true' : 'false', '--max-wait-ms', '50');
      if (id === 5) {
        const out = fresh(w, id, round);
        await createTopic(out);
        argv.push('--row', 'kafka', '--output', out, '--max-wait-ms', '50');
      }
      log(`W3 round ${round + 1}/${runs} row ${id}: ${w.rate}/s for ${w.seconds}s, load ${loadavg()[0]!.toFixed(2)}`);
      let ready!: () => void;
      const isReady = new Promise<void>((r) => { ready = r; });
      const running = nodeRow(argv, { timeoutMs: (w.seconds! + 90) * 1000, onStderr: (s) => { if (s.includes('ready')) ready(); } });
      running.catch(() => ready());
      await Promise.race([isReady, new Promise((r) => setTimeout(r, 15_000))]);
      await new Promise((r) => setTimeout(r, 1000)); // the consumer has joined / the source has its partitions
      try {
        producePerf(topic, n, w.size, w.rate);
        const s = await running;
        s.loadAvg1 = +loadavg()[0]!.toFixed(2);
        if (s.records < n) { s.short = true; log(`  ! row ${id} delivered ${s.records} of ${n} records${s.stalled ? ' (stalled 10 s, measurement ended there)' : ''}`); }
        results.get(id)!.runs.push(s);
        log(`  → p50 ${s.latencyP50Ms} ms, p99 ${s.latencyP99Ms} ms, ${s.cpuSeconds} CPU s, ${s.peakRssMB} MB`);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        log(`  → FAILED: ${msg.slice(0, 500)}`);
        results.get(id)!.errors.push(msg.slice(0, 2000));
      }
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    }
  }
  return [...results.values()];
}

// ---------------------------------------------------------------- recovery

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Restart → first new output, for a tidemark row (3: file sink, 5: Kafka sink), `kills` times. */
async function tidemarkKillTest(w: Workload, row: 3 | 5): Promise<{ recoveryMs: number[]; medianMs: number | null; errors: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), `tidemark-bench-kill-${row}-`));
  const out = join(dir, 'out');
  const outTopic = fresh(w, row, 99) + '-kill';
  const group = `bench-${RUN_ID}-kill-${row}`;
  const argv = ['--row', row === 3 ? 'file' : 'kafka', '--bootstrap', BROKER, '--topic', w.topic, '--daemon', '--checkpoint', join(dir, 'cp'),
    '--out', out, '--group', group, '--output', outTopic, '--max-per-partition', '2000'];
  if (row === 5) await createTopic(outTopic);
  const recoveryMs: number[] = [];
  const errors: string[] = [];
  // Output visibility: file sink — batch files in out/files; Kafka sink — a read_committed consumer.
  let kafkaSeen = 0;
  let consumer: ReturnType<typeof kafka.consumer> | undefined;
  if (row === 5) {
    consumer = kafka.consumer({ groupId: `${group}-watch`, readUncommitted: false, maxWaitTimeInMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topics: [outTopic], fromBeginning: false });
    const joined = new Promise<void>((r) => consumer!.on(consumer!.events.GROUP_JOIN, () => r()));
    await consumer.run({ eachBatch: async ({ batch }) => { kafkaSeen += batch.messages.length; } });
    await joined;
  }
  const files = (): number => (existsSync(join(out, 'files')) ? readdirSync(join(out, 'files')).filter((f) => f.startsWith('batch-')).length : 0);
  const progress = (): number => (row === 3 ? files() : kafkaSeen);
  const start = (): ReturnType<typeof spawn> => spawn(process.execPath, [NODE_ROW, ...argv], { cwd: root, stdio: ['ignore', 'ignore', 'ignore'] });
  const waitFor = async (pred: () => boolean, ms: number): Promise<boolean> => {
    const t = Date.now();
    while (Date.now() - t < ms) { if (pred()) return true; await sleep(5); }
    return false;
  };
  try {
    let proc = start();
    if (!(await waitFor(() => progress() > 0, 60_000))) throw new Error('no first output within 60 s');
    for (let k = 0; k < KILLS; k++) {
      await sleep(300);
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('exit', r));
      await sleep(2000); // settle (as the peers' KillTest does)
      const before = progress();
      const t0 = Date.now();
      proc = start();
      if (!(await waitFor(() => progress() > before, 120_000))) { errors.push(`no new output within 120 s after restart ${k + 1}`); break; }
      recoveryMs.push(Date.now() - t0);
      log(`  row ${row} restart ${k + 1}: ${recoveryMs.at(-1)} ms`);
    }
    proc.kill('SIGKILL');
  } catch (e) {
    errors.push(e instanceof Error ? e.message : String(e));
  } finally {
    await consumer?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
  return { recoveryMs, medianMs: median(recoveryMs), errors };
}

async function recovery(w: Workload): Promise<Record<string, unknown>> {
  const res: Record<string, unknown> = {};
  log(`recovery row 3 (${KILLS} kills)`);
  res['3'] = await tidemarkKillTest(w, 3);
  if (HAS_KAFKA_SINK) { log(`recovery row 5 (${KILLS} kills)`); res['5'] = await tidemarkKillTest(w, 5); } else log('row 5: kafkaSink not available');
  log(`recovery row 7 (${KILLS} kills, static membership)`);
  const id = `bench-${RUN_ID}-kill-r7`;
  try {
    res['7'] = await peer('kafka-streams/run', ['--kill-test', '--bootstrap', BROKER, '--input', w.topic, '--output', id, '--app-id', id,
      '--kills', String(KILLS), '--records-before-kill', String(QUICK ? 10_000 : 20_000), '--static-membership']);
  } catch (e) { res['7'] = { errors: [e instanceof Error ? e.message : String(e)] }; }
  return res;
}

// ---------------------------------------------------------------- report

function table(w: Workload, rows: RowResult[]): string {
  const raw = rows.find((r) => r.row === 2);
  const rate = (s: Summary): number => s.records / s.seconds;
  const rawRate = raw ? median(raw.runs.map(rate)) : null;
  const lines = [`### ${w.id}: ${w.records.toLocaleString('en-US')} records × ${w.size} B, ${PARTITIONS} partitions${w.rate ? `, ${w.rate}/s for ${w.seconds} s` : ''}`, '',
    '| row | system | runs | records/s | × row 2 | MB/s | CPU s / M records | peak RSS MB |' + (w.id === 'W3' ? ' p50 ms | p99 ms |' : ''),
    '|---|---|---|---|---|---|---|---|' + (w.id === 'W3' ? '---|---|' : '')];
  for (const r of rows) {
    if (r.runs.length === 0) { lines.push(`| ${r.row} | ${r.name} | 0 (${r.errors.length} failed) | | | | | |`); continue; }
    const rs = median(r.runs.map(rate))!;
    const mb = median(r.runs.map((s) => (s.records * w.size) / s.seconds / 1e6))!;
    const cpu = median(r.runs.map((s) => (s.cpuSeconds / s.records) * 1e6))!;
    const rss = median(r.runs.map((s) => s.peakRssMB))!;
    // W3 runs at a fixed input rate: records/s and MB/s would only measure the producer.
    const fixed = w.id === 'W3';
    let line = `| ${r.row} | ${r.name} | ${r.runs.length}${r.errors.length ? ` (+${r.errors.length} failed)` : ''}${r.runs.some((s) => s.short) ? ' (short)' : ''} | ${fixed ? '—' : Math.round(rs).toLocaleString('en-US')} | ${fixed || !rawRate ? '—' : (rs / rawRate).toFixed(2)} | ${fixed ? '—' : mb.toFixed(1)} | ${cpu.toFixed(2)} | ${rss.toFixed(0)} |`;
    if (w.id === 'W3') line += ` ${median(r.runs.map((s) => Number(s.latencyP50Ms)))} | ${median(r.runs.map((s) => Number(s.latencyP99Ms)))} |`;
    lines.push(line);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const startedAt = new Date();
  buildRows();
  await admin.connect();
  log(`broker ${BROKER}, quick=${QUICK}, rounds each way ${ROUNDS}, spark=${SPARK}, kafkaSink=${HAS_KAFKA_SINK}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (!HAS_KAFKA_SINK) log('row 5: kafkaSink not available');
  if (!HAS_PLATFORMATIC) log('row 9: @platformatic/kafka not installed (a devDependency; e.g. npm ci --omit=dev) — skipped');
  const W1: Workload = { id: 'W1', topic: '', records: QUICK ? 200_000 : 1_000_000, size: 200 };
  const W2: Workload = { id: 'W2', topic: '', records: QUICK ? 20_000 : 100_000, size: 10_240 };
  const W3: Workload = { id: 'W3', topic: '', records: 0, size: 200, rate: 20_000, seconds: QUICK ? 15 : 60 };
  W1.topic = `bench-w1-${W1.records}x${W1.size}`;
  W2.topic = `bench-w2-${W2.records}x${W2.size}`;
  W3.records = W3.rate! * W3.seconds!;
  const report: Record<string, unknown> = {
    startedAt: startedAt.toISOString(), broker: BROKER, quick: QUICK, roundsEachWay: ROUNDS, spark: SPARK, kafkaSink: HAS_KAFKA_SINK, platformatic: HAS_PLATFORMATIC,
    loadAvgAtStart: loadavg(), maxBatchBytes: MAX_BATCH_BYTES, workloads: {} as Record<string, unknown>,
  };
  const tables: string[] = [];
  const save = (): string => {
    const dir = join(root, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}${QUICK ? '-quick' : ''}.json`);
    writeFileSync(file, `${JSON.stringify({ ...report, loadAvgAtEnd: loadavg(), finishedAt: new Date().toISOString() }, null, 2)}\n`);
    return file;
  };
  const workloads = report.workloads as Record<string, unknown>;
  for (const w of [W1, W2]) {
    if (!ONLY.has(w.id.toLowerCase())) continue;
    await prepare(w);
    // --quick: W2 (1 GB of JVM and Node start-ups per round at 10 KB records) once per row, to stay under 5 minutes.
    const rows = await throughput(w, QUICK && w === W2 ? 1 : 2 * ROUNDS);
    workloads[w.id] = { ...w, rows };
    tables.push(table(w, rows));
    save();
  }
  if (ONLY.has('w3')) {
    const rows = await latency(W3);
    workloads.W3 = { ...W3, rows };
    tables.push(table(W3, rows));
    save();
  }
  if (ONLY.has('recovery')) {
    if (!W1.embeddedLog) await prepare(W1);
    const rec = await recovery(W1);
    report.recovery = rec;
    const line = (k: string): string => {
      const r = rec[k] as { recoveryMs?: number[]; medianMs?: number | null; errors?: string[] } | undefined;
      return r ? `| ${k} | ${ROWS.find((x) => x.id === Number(k))?.name ?? k} | ${(r.recoveryMs ?? []).join(', ')} | ${r.medianMs ?? ''} |${r.errors?.length ? ` ${r.errors.join('; ').slice(0, 200)}` : ''}` : '';
    };
    tables.push(['### Recovery: SIGKILL mid-stream, restart → first new output (ms)', '', '| row | system | runs | median |', '|---|---|---|---|',
      ...['3', '5', '7'].map(line).filter(Boolean)].join('\n'));
  }
  // Targets (W1).
  const w1 = workloads.W1 as { rows: RowResult[] } | undefined;
  if (w1) {
    const rate = (id: number): number | null => median(w1.rows.find((r) => r.row === id)?.runs.map((s) => s.records / s.seconds) ?? []);
    const rss3 = median(w1.rows.find((r) => r.row === 3)?.runs.map((s) => s.peakRssMB) ?? []);
    const r2 = rate(2);
    const targets = {
      row3OverRow2: r2 && rate(3) ? +(rate(3)! / r2).toFixed(3) : null,
      row4OverRow2: r2 && rate(4) ? +(rate(4)! / r2).toFixed(3) : null,
      row3PeakRssMB: rss3,
      row3RssLimitMB: (2 * MAX_BATCH_BYTES) / 1048576 + 100,
    };
    report.targets = targets;
    tables.push(['### Targets (W1)', '',
      `* row 3 / row 2 = ${targets.row3OverRow2} (target ≥ 0.9) ${targets.row3OverRow2 !== null && targets.row3OverRow2 >= 0.9 ? 'met' : 'NOT met'}`,
      `* row 4 / row 2 = ${targets.row4OverRow2} (target ≥ 0.97) ${targets.row4OverRow2 !== null && targets.row4OverRow2 >= 0.97 ? 'met' : 'NOT met'}`,
      `* row 3 peak RSS = ${rss3} MB (target ≤ ${targets.row3RssLimitMB} MB) ${rss3 !== null && rss3 <= targets.row3RssLimitMB ? 'met' : 'NOT met'}`].join('\n'));
  }
  await admin.disconnect();
  const file = save();
  console.log(`\n## tidemark benchmark ${startedAt.toISOString()}${QUICK ? ' (--quick)' : ''}, broker ${BROKER}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end`);
  console.log(`medians of ${2 * ROUNDS} runs per row (rounds in alternating order); × row 2 = records/s ratio to raw kafkajs\n`);
  console.log(tables.join('\n\n'));
  console.log(`\nJSON: ${file}`);
  console.log('Per-phase breakdown: node scripts/run-ts.js bench/phases.ts');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
