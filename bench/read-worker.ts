// Rows 3 and 4 with the Kafka source's reading on the main thread and in a worker thread
// (`node-row.js --read-worker`, bench/rows/read-worker.ts), alternating in one run so the
// machine's load hits both sides. Not part of `npm run bench`.
//
//   node scripts/build.js && node scripts/run-ts.js bench/read-worker.ts [--pairs 3] [--rows 3,4] [--topic T] [--max-in-flight N]
//
// KAFKA_BROKERS names the broker; the topic must exist (default: bench-reader-1000000x200-8p,
// 1 M × 200 B on 8 partitions, as bench/reader-gc.ts makes it). Prints one line per run and a
// table of medians.
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSync } from 'esbuild';

const { values: a } = parseArgs({ options: { pairs: { type: 'string' }, rows: { type: 'string' }, topic: { type: 'string' }, 'max-in-flight': { type: 'string' } } });
const pairs = Number(a.pairs ?? 3);
const rows = (a.rows ?? '3,4').split(',').map(Number);
const topic = a.topic ?? 'bench-reader-1000000x200-8p';
const brokers = process.env.KAFKA_BROKERS;
if (!brokers) throw new Error('set KAFKA_BROKERS=host:port');

const root = join(__dirname, '..');
const out = join(root, 'dist', 'bench', 'rows');
for (const f of ['node-row', 'read-worker']) {
  buildSync({ entryPoints: [join(root, 'bench', 'rows', `${f}.ts`)], bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning', outfile: join(out, `${f}.js`) });
}

interface Run { row: number; worker: boolean; recordsPerS: number; cpuS: number; rssMB: number; load: number }
const runs: Run[] = [];
function run(row: number, worker: boolean): void {
  const load = loadavg()[0]!;
  const args = [join(out, 'node-row.js'), '--row', 'file', '--bootstrap', brokers!, '--topic', topic, '--once', '--stage', row === 3 ? 'true' : 'false', ...(a['max-in-flight'] ? ['--max-in-flight', a['max-in-flight']] : []), ...(worker ? ['--read-worker'] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`row ${row}${worker ? ' --read-worker' : ''} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const s = JSON.parse(last) as { records: number; seconds: number; cpuSeconds: number; peakRssMB: number };
  const one: Run = { row, worker, recordsPerS: s.records / s.seconds, cpuS: s.cpuSeconds, rssMB: s.peakRssMB, load };
  runs.push(one);
  console.log(`row ${row} ${worker ? 'worker' : 'main  '}  ${Math.round(one.recordsPerS).toLocaleString('en')} records/s  CPU ${one.cpuS.toFixed(2)} s  peak ${Math.round(one.rssMB)} MB  load ${load.toFixed(1)}`);
}

for (let p = 0; p < pairs; p++) {
  for (const row of rows) {
    // Alternate which side goes first, pair by pair.
    const order = p % 2 === 0 ? [false, true] : [true, false];
    for (const w of order) run(row, w);
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
console.log('\n| row | reading in | runs | records/s (median) | CPU s (median) | peak RSS MB (median) | records/s worker ÷ main per pair |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | --- |');
for (const row of rows) {
  const main = runs.filter((r) => r.row === row && !r.worker);
  const work = runs.filter((r) => r.row === row && r.worker);
  const ratios = main.map((m, i) => (work[i]!.recordsPerS / m.recordsPerS).toFixed(2)).join(', ');
  for (const [name, xs] of [['main thread', main], ['worker', work]] as const) {
    console.log(`| ${row} | ${name} | ${xs.length} | ${Math.round(median(xs.map((r) => r.recordsPerS))).toLocaleString('en')} | ${median(xs.map((r) => r.cpuS)).toFixed(2)} | ${Math.round(median(xs.map((r) => r.rssMB)))} | ${name === 'worker' ? ratios : ''} |`);
  }
}
