// Bounded growth over thousands of batches (issue 17): a job on the embedded log writing the
// file sink and the rolling file sink (parts small enough to roll every few batches) runs
// ~2,000 one-record-per-partition batches. Open file descriptors and process listeners are
// the same late in the run as early in it, and the same after the run as before it; the
// checkpoint keeps retainBatches batch records.
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, EmbeddedLog, embeddedLogSource, Engine, fileSink, rollingFileSink } from 'tidemark';
import { openCheckpoint } from '../../checkpoint/store';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-long-run-');
const BATCHES = 2_000;
const PARTITIONS = 2;

/** Open fds, but for LevelDB's table and log files, whose number follows its compactions. */
function openFds(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return !/\.(ldb|log)$/.test(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      return false; // the fd readdir itself used, closed since
    }
  }).length;
}
const listeners = (): number => process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0);

async function run(dir: string, maxBatches: number, onBatch?: (id: number) => void): Promise<number> {
  const job = defineJob<string>({
    name: 'long-run',
    source: embeddedLogSource({ dir: join(dir, 'log'), topic: 'long' }),
    sinks: [fileSink({ dir: join(dir, 'out') }), rollingFileSink({ dir: join(dir, 'out'), maxPartBytes: 2048 })],
    transform: (records) => records.map((r) => r.value!.toString()),
    batch: { maxRecordsPerPartition: 1, maxWaitMs: 0 },
    checkpoint: { retainBatches: 50 },
  });
  const engine = new Engine(job, { checkpointDir: join(dir, 'checkpoint'), onBatch: (s) => onBatch?.(s.id) });
  return (await engine.run({ once: true, maxBatches })).batches;
}

it(`holds no more fds or listeners after ${BATCHES} batches than after 100; retainBatches records kept`, async () => {
  const dir = join(root, 'job');
  const log = await EmbeddedLog.open(join(dir, 'log'), { topic: 'long', partitions: PARTITIONS });
  await log.append(Array.from({ length: (BATCHES + 100) * PARTITIONS }, (_, i) => ({ value: `v${i}`, partition: i % PARTITIONS })));

  expect(await run(dir, 100)).toBe(100); // warm: modules loaded, the first part files written
  const before = { fds: openFds(), listeners: listeners() };
  // Sampled at every commit: the next batch (pipelined) may be reading or writing at that
  // moment, with a file open for it, so one sample is not the steady state. The fewest fds over
  // the first and the last 100 batches is (the most was not: a file of the batch in flight
  // open at one late sample failed it under load); a leak raises every sample.
  const early = { fds: Infinity, listeners: 0 };
  const late = { fds: Infinity, listeners: 0 };
  const batches = await run(dir, BATCHES, (id) => {
    const window = id > 200 && id <= 300 ? early : id > BATCHES && id <= BATCHES + 100 ? late : undefined;
    if (!window) return;
    window.fds = Math.min(window.fds, openFds());
    window.listeners = Math.max(window.listeners, listeners());
  });
  expect(batches).toBe(BATCHES);
  expect(early.fds).toBeGreaterThan(0);
  // A leak of one per batch would be ~1,900 more by the end, one per 1,000 batches 2: none is allowed.
  expect(late.fds).toBeLessThanOrEqual(early.fds);
  expect(late.listeners).toBeLessThanOrEqual(early.listeners);
  expect({ fds: openFds(), listeners: listeners() }).toEqual(before);

  const store = await openCheckpoint(join(dir, 'checkpoint'), { readOnly: true });
  try {
    expect((await store.batches()).length).toBe(50);
  } finally {
    await store.close();
  }
  expect(readdirSync(join(dir, 'out', 'files')).filter((f) => f.startsWith('batch-'))).toHaveLength(BATCHES + 100);
  expect(readdirSync(join(dir, 'out', 'rolling')).filter((f) => f.startsWith('part-')).length).toBeGreaterThan(50);
}, 60_000);
