// Per-phase cost of a batch (plan / read / transform / stage / deliver / commit), in ms per
// batch, at 1k, 10k and 100k records per batch: the generator source (200-byte values) →
// a file sink, outputs staged (the default) and not. Shows where the next optimisation should go.
//   node scripts/run-ts.js bench/phases.ts [--batches N]
//   node scripts/run-ts.js bench/phases.ts --bootstrap HOST:PORT --topic T   the same on a Kafka topic
//     (read from its start by a fresh group each time; it must hold 100k × batches records)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defineJob, Engine, fileSink, generatorSource, kafkaSource, type BatchStats, type Source } from 'tidemark';

const PHASES = ['plan', 'read', 'transform', 'stage', 'deliver', 'commit'];
const VALUE = Buffer.alloc(200, 'x');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

/** The Kafka topic to read instead of the generator (--bootstrap, --topic), and its partition count. */
let kafka: { bootstrap: string; topic: string; partitions: number } | undefined;

async function measure(perBatch: number, batches: number, stageOutputs: boolean): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-phases-'));
  const partitions = kafka?.partitions ?? 4;
  const source: Source = kafka
    ? kafkaSource({ brokers: [kafka.bootstrap], topics: [kafka.topic], groupId: `phases-${process.pid}-${Date.now()}`, startingOffsets: 'earliest' })
    : generatorSource({ partitions, size: (perBatch / partitions) * batches, value: () => VALUE });
  const stats: BatchStats[] = [];
  const committedAt: number[] = [];
  try {
    const job = defineJob({
      name: 'phases',
      source,
      sinks: [fileSink<{ p: number; o: number; n: number }>({ dir: join(dir, 'out') })],
      transform: (records) => records.map((r) => ({ p: r.partition, o: r.offset, n: r.value!.length })),
      batch: { maxRecordsPerPartition: perBatch / partitions, maxBatchBytes: 1 << 30 },
      stageOutputs,
    });
    await new Engine(job, { checkpointDir: join(dir, 'cp'), fingerprint: 'bench', onBatch: (s) => { stats.push(s); committedAt.push(performance.now()); } }).run({ once: !kafka, maxBatches: batches });
    const row: Record<string, number> = {};
    for (const p of PHASES) row[p] = median(stats.slice(1).map((s) => s.durations[p] ?? 0));
    // Steady state: the batches after the first, from the first commit to the last (no connect, no start-up).
    row['records/s'] = Math.round(stats.slice(1).reduce((n, s) => n + s.records, 0) / ((committedAt[committedAt.length - 1]! - committedAt[0]!) / 1000));
    return row;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { batches: { type: 'string' }, bootstrap: { type: 'string' }, topic: { type: 'string' } } });
  const batches = Number(values.batches ?? 12);
  if (values.bootstrap && values.topic) {
    const { Kafka, logLevel } = await import('kafkajs');
    const admin = new Kafka({ brokers: [values.bootstrap], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const partitions = (await admin.fetchTopicOffsets(values.topic)).length;
    await admin.disconnect();
    kafka = { bootstrap: values.bootstrap, topic: values.topic, partitions };
  }
  const lines = [`| records/batch | staged | ${PHASES.join(' | ')} | records/s |`, `|---|---|${PHASES.map(() => '---').join('|')}|---|`];
  for (const perBatch of [1_000, 10_000, 100_000]) {
    for (const staged of [true, false]) {
      const row = await measure(perBatch, batches, staged);
      lines.push(`| ${perBatch} | ${staged ? 'yes' : 'no'} | ${PHASES.map((p) => row[p]).join(' | ')} | ${row['records/s']} |`);
    }
  }
  console.log(`median ms per batch and records/s (first batch excluded), ${batches} batches each, ${kafka ? `Kafka topic ${kafka.topic} (${kafka.partitions} partitions)` : 'generator source, 200 B values'}, ${new Date().toISOString()}`);
  console.log(lines.join('\n'));
}

void main();
