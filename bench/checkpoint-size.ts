// Does LevelDB's own compaction keep the checkpoint small once staged outputs are deleted
// (issue 17: a checkpoint of 28.7 MiB with nothing in flight was seen)? A job stages large
// batches (--records of --bytes, --per-batch per partition), then the checkpoint's size on disk
// is measured with nothing in flight, and again after a manual compaction of everything.
//
//   node scripts/run-ts.js bench/checkpoint-size.ts [--records 200000] [--bytes 1000] [--per-batch 10000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Level } from 'level';
import { sizeOnDisk } from '../checkpoint/store';
import { defineJob, EmbeddedLog, embeddedLogSource, Engine, memorySink } from '../src/index';

const { values: args } = parseArgs({ options: { records: { type: 'string' }, bytes: { type: 'string' }, 'per-batch': { type: 'string' } } });
const RECORDS = Number(args.records ?? 200_000);
const BYTES = Number(args.bytes ?? 1000);
const PER_BATCH = Number(args['per-batch'] ?? 10_000);

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'tidemark-cp-size-'));
  const log = await EmbeddedLog.open(join(work, 'log'), { topic: 'cp', partitions: 4 });
  const value = 'x'.repeat(BYTES);
  for (let at = 0; at < RECORDS; at += 20_000) await log.append(Array.from({ length: Math.min(20_000, RECORDS - at) }, () => ({ value })));
  const checkpointDir = join(work, 'checkpoint');
  const sizes: number[] = [];
  const sink = memorySink<string>('m');
  const job = defineJob<string>({
    name: 'cp-size', source: embeddedLogSource({ dir: join(work, 'log'), topic: 'cp' }), sinks: [sink],
    transform: (records) => records.map((r) => r.value!.toString()),
    batch: { maxRecordsPerPartition: PER_BATCH },
  });
  const engine = new Engine(job, { checkpointDir, onBatch: () => sink.batches.clear() });
  const summary = await engine.run({ once: true });
  sizes.push(await sizeOnDisk(checkpointDir));
  const db = new Level(join(checkpointDir, 'db'));
  await db.open();
  const t = performance.now();
  await (db as unknown as { compactRange(start: string, end: string): Promise<void> }).compactRange('', '~'); // classic-level's, untyped by level
  const compactMs = performance.now() - t;
  await db.close();
  sizes.push(await sizeOnDisk(checkpointDir));
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
  console.log(`${summary.batches} batches, ${RECORDS} × ${BYTES} B staged: checkpoint ${mib(sizes[0]!)} MiB with nothing in flight, ${mib(sizes[1]!)} MiB after compactRange (${compactMs.toFixed(0)} ms)`);
  rmSync(work, { recursive: true, force: true });
}

void main();
