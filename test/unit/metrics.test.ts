// The metrics server survives its own failures: a handler that throws answers 500 and is
// reported, and the server goes on serving (the old one let the exception end the daemon).
// The checkpoint size comes from a background measurement, not from a walk per scrape.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineStatus } from '../../src/engine';
import { Metrics } from '../../src/metrics';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-metrics-unit-');

const status: EngineStatus = { recovered: true, stopping: false, lockHeld: true, lastCommitted: 3, positions: {}, lag: {}, progressAt: Date.now() };

it('a throwing handler answers 500, is reported, and the server keeps serving', async () => {
  const reported: string[] = [];
  let broken = true;
  const metrics = new Metrics({
    engine: {
      status: () => {
        if (broken) throw new Error('status exploded');
        return status;
      },
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
    expect(reported).toEqual(['serving a request: status exploded']); // the second is within 10 s: counted, not logged
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
  const metrics = new Metrics({ engine: { status: () => status }, checkpointDir: dir, job: 'j' });
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

it('group mode: one epoch gauge per partition owned now, and none once it is gone', async () => {
  let owned: Record<string, number> = { 'clicks/0': 3, 'clicks/2': 5 };
  const metrics = new Metrics({ engine: { status: () => ({ ...status, owned }) }, checkpointDir: root, job: 'j' });
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
