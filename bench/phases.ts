// Per-phase cost of a batch (plan / read / transform / stage / deliver / commit), in ms per
// batch, at 1k, 10k and 100k records per batch: the generator source (200-byte values) →
// a file sink, outputs staged (the default). Shows where the next optimisation should go.
//   node scripts/run-ts.js bench/phases.ts [--batches N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defineJob, Engine, fileSink, generatorSource, type BatchStats } from 'tidemark';

const PHASES = ['plan', 'read', 'transform', 'stage', 'deliver', 'commit'];
const VALUE = Buffer.alloc(200, 'x');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function measure(perBatch: number, batches: number, stageOutputs: boolean): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-phases-'));
  const partitions = 4;
  const stats: BatchStats[] = [];
  try {
    const job = defineJob({
      name: 'phases',
      source: generatorSource({ partitions, size: (perBatch / partitions) * batches, value: () => VALUE }),
      sinks: [fileSink<{ p: number; o: number; n: number }>({ dir: join(dir, 'out') })],
      transform: (records) => records.map((r) => ({ p: r.partition, o: r.offset, n: r.value!.length })),
      batch: { maxRecordsPerPartition: perBatch / partitions, maxBatchBytes: 1 << 30 },
      stageOutputs,
    });
    const started = process.hrtime.bigint();
    await new Engine(job, { checkpointDir: join(dir, 'cp'), fingerprint: 'bench', onBatch: (s) => stats.push(s) }).run({ once: true });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const row: Record<string, number> = {};
    for (const p of PHASES) row[p] = median(stats.slice(1).map((s) => s.durations[p] ?? 0));
    row['records/s'] = Math.round((perBatch * batches) / seconds);
    return row;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { batches: { type: 'string' } } });
  const batches = Number(values.batches ?? 12);
  const lines = [`| records/batch | staged | ${PHASES.join(' | ')} | records/s |`, `|---|---|${PHASES.map(() => '---').join('|')}|---|`];
  for (const perBatch of [1_000, 10_000, 100_000]) {
    for (const staged of [true, false]) {
      const row = await measure(perBatch, batches, staged);
      lines.push(`| ${perBatch} | ${staged ? 'yes' : 'no'} | ${PHASES.map((p) => row[p]).join(' | ')} | ${row['records/s']} |`);
    }
  }
  console.log(`median ms per batch (first batch excluded), ${batches} batches each, ${new Date().toISOString()}`);
  console.log(lines.join('\n'));
}

void main();
