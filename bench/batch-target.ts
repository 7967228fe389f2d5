// batch.targetMs against a sink whose latency steps 5 ms → 500 ms → 5 ms (issue 17).
//
//   npm run bench:target [-- --target-ms 250] [--phase-s 20] [--rate 3000] [--backlog 100000] [--static] [--per-statement]
//
// An embedded log starts with a backlog and a producer appends at --rate records/s. The sink's
// time grows with the batch: 5 ms per 1,000 outputs in the first and last phase, 500 ms in the
// middle one (then it keeps up with 2,000 records/s at most, and a lag builds). Every batch is printed (time, phase, records, ms, lag); then a summary
// per 5 s window. --static runs the same without targetMs (the limits alone), for contrast.
// --per-statement charges the latency per started 1,000 outputs instead (a round trip per
// statement of a database sink): in the slow phase every write costs more than the target.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defineJob, EmbeddedLog, embeddedLogSource, Engine, type BatchStats, type Sink } from '../src/index';

const { values: args } = parseArgs({
  options: {
    'target-ms': { type: 'string' }, 'phase-s': { type: 'string' }, rate: { type: 'string' }, backlog: { type: 'string' }, static: { type: 'boolean' }, 'per-statement': { type: 'boolean' },
  },
});
const TARGET_MS = Number(args['target-ms'] ?? 250);
const PHASE_MS = Number(args['phase-s'] ?? 20) * 1000;
const RATE = Number(args.rate ?? 3000);
const BACKLOG = Number(args.backlog ?? 100_000);
const STATIC = args.static === true;
const PER_STATEMENT = args['per-statement'] === true;
const LATENCIES = [5, 500, 5];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'tidemark-target-'));
  const log = await EmbeddedLog.open(join(work, 'log'), { topic: 'target', partitions: 4 });
  const value = (n: number): string => `{"n":${n},"f":"${'x'.repeat(60)}"}`;
  for (let at = 0; at < BACKLOG; at += 50_000) await log.append(Array.from({ length: Math.min(50_000, BACKLOG - at) }, (_, i) => ({ value: value(at + i) })));

  let started = 0;
  const phase = (): number => Math.min(LATENCIES.length - 1, Math.floor((Date.now() - started) / PHASE_MS));
  const sink: Sink<number> = {
    name: 'stepped',
    async write(batch) {
      const per1000 = LATENCIES[phase()]!;
      await sleep(PER_STATEMENT ? per1000 * Math.ceil(batch.outputs.length / 1000) : (per1000 * batch.outputs.length) / 1000);
    },
  };
  const job = defineJob<number>({
    name: 'target', source: embeddedLogSource({ dir: join(work, 'log'), topic: 'target' }), sinks: [sink],
    transform: (records) => records.map((r) => r.offset),
    batch: { maxRecordsPerPartition: 10_000, maxWaitMs: 50, pollIntervalMs: 50, ...(STATIC ? {} : { targetMs: TARGET_MS }) },
  });
  const rows: Array<{ t: number; phase: number; records: number; ms: number; lag: number }> = [];
  const engine = new Engine(job, {
    checkpointDir: join(work, 'checkpoint'),
    onBatch: (s: BatchStats) => {
      const row = {
        t: (Date.now() - started) / 1000, phase: phase(), records: s.records, ms: Math.round(Object.values(s.durations).reduce((a, b) => a + b, 0)),
        lag: Object.values(s.lag).reduce((a, b) => a + b, 0),
      };
      rows.push(row);
      console.log(`t=${row.t.toFixed(1)}s latency=${LATENCIES[row.phase]}ms/1000 records=${row.records} ms=${row.ms} lag=${row.lag}`);
    },
  });
  started = Date.now();
  let produced = 0;
  let appending: Promise<unknown> | undefined; // one append at a time (the log's lock file)
  const producer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * RATE) - produced;
    if (due <= 0 || appending) return;
    appending = log.append(Array.from({ length: due }, (_, i) => ({ value: value(BACKLOG + produced + i) }))).finally(() => {
      appending = undefined;
    });
    produced += due;
  }, 100);
  const run = engine.run();
  await sleep(PHASE_MS * LATENCIES.length);
  clearInterval(producer);
  await appending;
  engine.stop();
  await run;

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  console.log(`\n${STATIC ? 'static limits (no targetMs)' : `targetMs ${TARGET_MS}`}, backlog ${BACKLOG}, ${RATE} records/s produced, latency ${LATENCIES.join(' → ')} ms per ${PER_STATEMENT ? 'started ' : ''}1,000 outputs, ${PHASE_MS / 1000} s each`);
  console.log('| window (s) | sink latency | batches | median records | median ms | max ms | lag at end |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (let w = 0; w * 5 < (PHASE_MS * LATENCIES.length) / 1000; w++) {
    const inWindow = rows.filter((r) => r.t >= w * 5 && r.t < (w + 1) * 5);
    if (inWindow.length === 0) {
      console.log(`| ${w * 5}–${w * 5 + 5} | ${LATENCIES[Math.min(LATENCIES.length - 1, Math.floor((w * 5000) / PHASE_MS))]} ms | 0 | | | | |`);
      continue;
    }
    const ms = inWindow.map((r) => r.ms);
    console.log(`| ${w * 5}–${w * 5 + 5} | ${LATENCIES[inWindow[0]!.phase]} ms | ${inWindow.length} | ${median(inWindow.map((r) => r.records))} | ${median(ms)} | ${Math.max(...ms)} | ${inWindow[inWindow.length - 1]!.lag} |`);
  }
  rmSync(work, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
