// The metrics server survives its own failures: a handler that throws answers 500 and is
// reported, and the server goes on serving (the old one let the exception end the daemon).
// The checkpoint size comes from a background measurement, not from a walk per scrape.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Registry } from 'prom-client';
import { defineJob, Engine, generatorSource, memorySink } from 'tidemark';
import type { EngineCheckpoint, EngineStatus } from '../../src/engine';
import { Metrics } from '../../src/metrics';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-metrics-unit-');

const status: EngineStatus = { recovered: true, stopping: false, lockHeld: true, lastCommitted: 3, positions: {}, lag: {}, progressAt: Date.now() };
const checkpoint = (): EngineCheckpoint => ({ meta: undefined, inFlight: undefined });

it('a throwing handler answers 500, is reported, and the server keeps serving', async () => {
  const reported: string[] = [];
  let broken = true;
  const metrics = new Metrics({
    engine: {
      status: () => {
        if (broken) throw new Error('status exploded');
        return status;
      },
      checkpoint,
    },
    checkpointDir: join(root, 'none'), job: 'j', onError: (err, what) => reported.push(`${what}: ${(err as Error).message}`),
  });
  const port = await metrics.listen(0, '127.0.0.1');
  try {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(500);
    expect(await ready.text()).toBe('status exploded\n');
    const scrape = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(scrape.status).toBe(500);
    await scrape.text();
    // The status page's first sample (at listen) failed too, and went on; the second request's failure is within 10 s: counted, not logged.
    expect(reported).toEqual(['sampling the status page: status exploded', 'serving a request: status exploded']);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    broken = false;
    await new Promise((resolve) => setTimeout(resolve, 250)); // past the shared rendering of the failed scrape
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
  } finally {
    await metrics.close();
  }
});

it('reports the checkpoint size measured in the background, not per scrape', async () => {
  const dir = join(root, 'cp');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'a'), Buffer.alloc(1000));
  const metrics = new Metrics({ engine: { status: () => status, checkpoint }, checkpointDir: dir, job: 'j' });
  const size = async (): Promise<number> => Number(/^tidemark_checkpoint_size_bytes\{[^}]*\} (\d+)$/m.exec(await metrics.registry.metrics())?.[1]);
  const port = await metrics.listen(0, '127.0.0.1');
  try {
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await size()).toBe(1000);
    writeFileSync(join(dir, 'b'), Buffer.alloc(500));
    expect(await size()).toBe(1000); // a scrape does not walk the directory
    metrics.observe({ id: 1, ranges: [], recovered: false, records: 0, outputs: 0, deadLetters: 0, bytesIn: 0, bytesOut: 0, durations: {}, lag: {} });
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // a commit: measured again within a second
    expect(await size()).toBe(1500);
    expect(port).toBeGreaterThan(0);
  } finally {
    await metrics.close();
  }
});

it('an Engine with a registry option publishes the daemon\'s tidemark_* metrics there, and a new Engine replaces them', async () => {
  const names = (r: Registry): string[] => r.getMetricsAsArray().map((m) => m.name).filter((n) => n.startsWith('tidemark_')).sort();
  const daemon = new Metrics({ engine: { status: () => status, checkpoint }, checkpointDir: join(root, 'none'), job: 'j' });
  const registry = new Registry();
  const mine = new Counter({ name: 'app_requests_total', help: 'the owner\'s own', registers: [registry] });
  mine.inc(2);
  const job = defineJob({ name: 'lib', source: generatorSource({ partitions: 2, size: 25 }), sinks: [memorySink<number>()], transform: (records) => records.map((r) => r.offset), batch: { maxRecordsPerPartition: 10 } });
  const dir = join(root, 'lib-cp');
  await new Engine(job, { checkpointDir: dir, registry }).run({ once: true });
  expect(names(registry)).toEqual(names(daemon.registry));
  const text = await registry.metrics();
  expect(text).toMatch(/^tidemark_records_in_total 50$/m);
  expect(text).toMatch(/^tidemark_batches_total\{outcome="committed"\} 3$/m);
  expect(text).toMatch(/^tidemark_position\{topic="generated",partition="1"\} 25$/m);
  expect(text).toMatch(/^tidemark_checkpoint_size_bytes \d+$/m); // measured in the background, at most once a second
  expect(text).toMatch(/^app_requests_total 2$/m);
  expect(text).not.toMatch(/process_cpu|job="/); // Node's process metrics and labels are the owner's to choose

  await new Engine(job, { checkpointDir: dir, registry }).run({ once: true }); // nothing new: counters start again
  expect(await registry.metrics()).toMatch(/^tidemark_records_in_total 0$/m);
});

it('group mode: one epoch gauge per partition owned now, and none once it is gone', async () => {
  let owned: Record<string, number> = { 'clicks/0': 3, 'clicks/2': 5 };
  const metrics = new Metrics({ engine: { status: () => ({ ...status, owned }), checkpoint }, checkpointDir: root, job: 'j' });
  const epochs = async (): Promise<string[]> => (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('tidemark_partition_epoch{'));
  try {
    expect(await epochs()).toEqual([
      'tidemark_partition_epoch{topic="clicks",partition="0",job="j"} 3',
      'tidemark_partition_epoch{topic="clicks",partition="2",job="j"} 5',
    ]);
    owned = { 'clicks/2': 5 };
    expect(await epochs()).toEqual(['tidemark_partition_epoch{topic="clicks",partition="2",job="j"} 5']);
  } finally {
    await metrics.close();
  }
});
