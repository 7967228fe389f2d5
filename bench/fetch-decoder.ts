// Rows 2, 3 and 4 with and without src/kafka/fetch-decoder.ts (kafkajs's own decode of Fetch
// answers when it is left out), alternating in one run, the order reversed each round, so the
// machine's load hits every side. GC time per run from perf_hooks' 'gc' entries (a preload).
// --reader instead alternates bench/reader-gc.ts --allocated (the reader alone; MB allocated
// hardly moves with the machine's load) with and without it. Not part of `npm run bench`.
//
//   node scripts/build.js && KAFKA_BROKERS=host:port node scripts/run-ts.js bench/fetch-decoder.ts [--rounds 3] [--topic T] [--reader]
//
// The topic must exist (default: bench-reader-1000000x200-8p, 1 M × 200 B on 8 partitions, as
// bench/reader-gc.ts makes it). Prints one line per run and a table of medians.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const { values: a } = parseArgs({ options: { rounds: { type: 'string' }, topic: { type: 'string' }, reader: { type: 'boolean' } } });
const rounds = Number(a.rounds ?? 3);
const topic = a.topic ?? 'bench-reader-1000000x200-8p';
const brokers = process.env.KAFKA_BROKERS;
if (!brokers) throw new Error('set KAFKA_BROKERS=host:port');

const root = join(__dirname, '..');
const out = join(root, 'dist', 'bench', 'rows');
/** Bundles bench/`entry` as bench/run.ts does; `withoutDecoder`: installFetchDecoder does nothing (the "before"). */
const bundle = (entry: string, outfile: string, withoutDecoder: boolean): Promise<unknown> => build({
  entryPoints: [join(root, 'bench', entry)], bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning', outfile: join(out, outfile),
  plugins: withoutDecoder ? [{
    name: 'no-fetch-decoder',
    setup(b) {
      b.onResolve({ filter: /\/fetch-decoder$/ }, (r) => ({ path: r.path, namespace: 'stub' }));
      b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'export function installFetchDecoder() {}', loader: 'ts' }));
    },
  }] : [],
});
const median = (xs: number[]): number => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

const preload = join(tmpdir(), `tidemark-gc-preload-${process.pid}.cjs`);
writeFileSync(preload, `let ms = 0; new (require('node:perf_hooks').PerformanceObserver)((l) => { for (const e of l.getEntries()) ms += e.duration; }).observe({ entryTypes: ['gc'] });
process.on('exit', () => process.stderr.write('\\ngcMs ' + ms.toFixed(0) + '\\n'));\n`);

type Side = 'row 2' | '3 kafkajs' | '3 lean' | '4 kafkajs' | '4 lean';
interface Run { side: Side; recordsPerS: number; cpuS: number; gcMs: number; rssMB: number; load: number; round: number }
const runs: Run[] = [];
function run(side: Side, round: number): void {
  const load = loadavg()[0]!;
  const bundle = join(out, side.endsWith('kafkajs') ? 'node-row-kafkajs-decode.js' : 'node-row.js');
  const rowArgs = side === 'row 2' ? ['--row', 'raw', '--expect', '1000000'] : ['--row', 'file', '--once', '--stage', side.startsWith('3') ? 'true' : 'false'];
  const r = spawnSync(process.execPath, ['--require', preload, bundle, '--bootstrap', brokers!, '--topic', topic, ...rowArgs], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  const gc = /gcMs (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !last.startsWith('{') || !gc) throw new Error(`${side} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const s = JSON.parse(last) as { records: number; seconds: number; cpuSeconds: number; peakRssMB: number };
  const one: Run = { side, recordsPerS: s.records / s.seconds, cpuS: s.cpuSeconds, gcMs: Number(gc[1]), rssMB: s.peakRssMB, load, round };
  runs.push(one);
  console.log(`round ${round} ${side.padEnd(9)}  ${Math.round(one.recordsPerS).toLocaleString('en')} records/s  CPU ${one.cpuS.toFixed(2)} s  GC ${one.gcMs} ms  peak ${Math.round(one.rssMB)} MB  load ${load.toFixed(1)}`);
}

function report(): void {
  const row2 = (round: number): number => runs.find((r) => r.side === 'row 2' && r.round === round)!.recordsPerS;
  console.log('\n| side | runs | records/s | × row 2 (median of rounds) | CPU s | GC ms | peak RSS MB |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const side of order) {
    const xs = runs.filter((r) => r.side === side);
    console.log(`| ${side} | ${xs.length} | ${Math.round(median(xs.map((r) => r.recordsPerS))).toLocaleString('en')} | ${median(xs.map((r) => r.recordsPerS / row2(r.round))).toFixed(2)} | ${median(xs.map((r) => r.cpuS)).toFixed(2)} | ${Math.round(median(xs.map((r) => r.gcMs)))} | ${Math.round(median(xs.map((r) => r.rssMB)))} |`);
  }
}

function readerRounds(): void {
  const got: Record<string, Array<{ cpuMs: number; gcMs: number; allocatedMB: number }>> = { kafkajs: [], lean: [] };
  for (let round = 0; round < rounds; round++) {
    for (const side of round % 2 === 0 ? ['kafkajs', 'lean'] : ['lean', 'kafkajs']) {
      const r = spawnSync(process.execPath, [join(out, side === 'lean' ? 'reader-gc.js' : 'reader-gc-kafkajs-decode.js'), '--allocated'], { encoding: 'utf8' });
      const last = r.stdout.trim().split('\n').pop() ?? '';
      if (r.status !== 0 || !last.startsWith('{')) throw new Error(`reader-gc (${side}) failed (${r.status}): ${r.stderr.slice(-2000)}`);
      got[side]!.push(JSON.parse(last) as { cpuMs: number; gcMs: number; allocatedMB: number });
      console.log(`round ${round} ${side.padEnd(7)} ${last}`);
    }
  }
  console.log('\n| reader alone | runs | CPU ms | GC ms | MB allocated |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [side, xs] of Object.entries(got)) console.log(`| ${side} | ${xs.length} | ${median(xs.map((x) => x.cpuMs))} | ${median(xs.map((x) => x.gcMs))} | ${median(xs.map((x) => x.allocatedMB))} |`);
}

const order: Side[] = ['row 2', '3 kafkajs', '3 lean', '4 kafkajs', '4 lean'];
if (a.reader) {
  void Promise.all([bundle('reader-gc.ts', 'reader-gc.js', false), bundle('reader-gc.ts', 'reader-gc-kafkajs-decode.js', true)]).then(readerRounds);
} else {
  void Promise.all([bundle('rows/node-row.ts', 'node-row.js', false), bundle('rows/node-row.ts', 'node-row-kafkajs-decode.js', true)]).then(() => {
    for (let round = 0; round < rounds; round++) for (const side of round % 2 === 0 ? order : [...order].reverse()) run(side, round);
    report();
  });
}
