import { join } from 'node:path';
import { defineJob, Engine, generatorSource, memorySink, type BatchStats, type OffsetMap, type SourceRecord } from 'tidemark';
import { MemoryLog } from '../support/memory-source';
import { tempDir } from '../support/tmp';

const values = (records: SourceRecord[]): string[] => records.map((r) => `${r.partition}:${r.offset}`);

describe('engine on the generator source', () => {
  const root = tempDir();

  it('processes every offset exactly once across batches and restarts', async () => {
    const sink = memorySink<string>();
    let size = 250;
    const make = () => defineJob({
      name: 'gen', source: generatorSource({ partitions: 3, size: () => size }), sinks: [sink],
      transform: values, batch: { maxRecordsPerPartition: 40 },
    });
    const dir = join(root, 'cp1');
    const first = await new Engine(make(), { checkpointDir: dir }).run({ once: true });
    expect(first.records).toBe(750);
    expect(first.batches).toBe(Math.ceil(250 / 40));
    size = 300;
    const second = await new Engine(make(), { checkpointDir: dir }).run({ once: true });
    expect(second.records).toBe(150);
    const all = sink.all();
    expect(new Set(all).size).toBe(900);
    expect(all.length).toBe(900);
    expect(second.positions).toEqual({ 'generated/0': 300, 'generated/1': 300, 'generated/2': 300 });
  });
});

describe('engine batch sizes', () => {
  const root = tempDir();

  it('keeps every batch within maxBatchBytes, the first one too (before any record size is known)', async () => {
    const big = Buffer.alloc(10_000, 'x');
    const sizes: number[] = [];
    const engine = new Engine(defineJob<number>({
      name: 'sizes', source: generatorSource({ partitions: 4, size: 500, value: () => big }), sinks: [memorySink<number>()],
      transform: (records: SourceRecord[]) => records.map((r) => r.offset),
      batch: { maxBatchBytes: 1024 * 1024, maxRecordsPerPartition: 100_000, maxWaitMs: 0 },
    }), { checkpointDir: join(root, 'sizes'), onBatch: (s) => sizes.push(s.bytesIn) });
    const summary = await engine.run({ once: true });
    expect(summary.records).toBe(2000);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1024 * 1024);
    expect(sizes.length).toBeLessThan(40); // and not absurdly small once the size is measured
  });

  it('with batch.targetMs, a sink that takes 1 ms per 10 outputs gets batches far below the limits; without, the limits', async () => {
    const run = async (name: string, targetMs: number | undefined): Promise<number[]> => {
      const sizes: number[] = [];
      const slow = { name: 'slow', write: (b: { outputs: readonly number[] }) => new Promise<void>((r) => setTimeout(r, b.outputs.length / 10)) };
      await new Engine(defineJob<number>({
        name, source: generatorSource({ partitions: 2, size: 6_000 }), sinks: [slow],
        transform: (records: SourceRecord[]) => records.map((r) => r.offset),
        batch: { maxRecordsPerPartition: 3_000, maxWaitMs: 0, ...(targetMs !== undefined ? { targetMs } : {}) },
      }), { checkpointDir: join(root, name), onBatch: (s) => sizes.push(s.records) }).run({ once: true });
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(12_000);
      return sizes;
    };
    // The first batch assumes 64 KiB records (1,024 within maxBatchBytes); then the limit, 2 × 3,000.
    expect(Math.max(...await run('static', undefined))).toBe(6_000);
    // 50 ms is ~500 outputs at this sink: the first batch is the controller's first size, the next follow the measured rate.
    const sized = await run('target', 50);
    expect(sized[0]).toBe(1_000);
    expect(Math.max(...sized.slice(1, -1))).toBeLessThan(2_000);
    expect(sized.length).toBeGreaterThan(8);
    expect(() => defineJob({ name: 'bad', source: generatorSource({ partitions: 1, size: 1 }), sinks: [memorySink()], transform: () => [], batch: { targetMs: 0 } }))
      .toThrow('Job field `batch.targetMs` must be a positive whole number; got 0.');
  });
});

describe('engine recovery over a real LevelDB checkpoint', () => {
  const root = tempDir();
  class Crash extends Error {}
  const crashAt = (target: string) => (phase: string) => {
    if (phase === target) throw new Crash(phase);
  };

  it('a non-deterministic transform: a batch staged before a crash is delivered from its staged outputs, not recomputed', async () => {
    const dir = join(root, 'nondet');
    const sink = memorySink<{ v: string; run: number; buf: Buffer }>();
    let executions = 0;
    const make = () => defineJob({
      name: 'nondet', source: generatorSource({ partitions: 2, size: 30 }), sinks: [sink], batch: { maxRecordsPerPartition: 10 },
      transform: (records: SourceRecord[]) => {
        const run = ++executions;
        return records.map((r) => ({ v: `${r.partition}:${r.offset}`, run, buf: Buffer.from([run, r.offset]) }));
      },
    });
    // Batch 1 commits; batch 2 is staged, then the process "dies" before delivering it.
    let staged = 0;
    const crash = (phase: string) => {
      if (phase === 'staged' && ++staged === 2) throw new Crash(phase);
    };
    await expect(new Engine(make(), { checkpointDir: dir, crashPoint: crash }).run({ once: true })).rejects.toThrow(Crash);
    expect([...sink.batches.keys()]).toEqual([1]);
    expect(executions).toBe(2);

    const summary = await new Engine(make(), { checkpointDir: dir }).run({ once: true });
    expect(summary.lastCommitted).toBe(3);
    expect(executions).toBe(3); // batch 2 was not recomputed; batch 3 ran once
    const batch2 = sink.batches.get(2)!;
    expect(batch2).toHaveLength(20);
    expect(batch2.every((o) => o.run === 2 && Buffer.isBuffer(o.buf) && o.buf[0] === 2)).toBe(true);
    expect(sink.all().map((o) => o.v).sort()).toEqual([0, 1].flatMap((p) => Array.from({ length: 30 }, (_, o) => `${p}:${o}`)).sort());
  });

  it('a batch planned before a crash is re-run with exactly its recorded ranges, even after the source grew', async () => {
    const dir = join(root, 'planned');
    const sink = memorySink<string>();
    let size = 25;
    const seen: Array<{ id: number; ranges: unknown }> = [];
    const make = () => defineJob({
      name: 'planned', source: generatorSource({ partitions: 2, size: () => size }), sinks: [sink], batch: { maxRecordsPerPartition: 100 },
      transform: (records: SourceRecord[], ctx) => {
        seen.push({ id: ctx.batchId, ranges: ctx.ranges });
        return values(records);
      },
    });
    await expect(new Engine(make(), { checkpointDir: dir, crashPoint: crashAt('planned') }).run({ once: true })).rejects.toThrow(Crash);
    size = 60;
    await new Engine(make(), { checkpointDir: dir }).run({ once: true });
    expect(seen).toEqual([
      { id: 1, ranges: [{ topic: 'generated', partition: 0, from: 0, until: 25 }, { topic: 'generated', partition: 1, from: 0, until: 25 }] },
      { id: 2, ranges: [{ topic: 'generated', partition: 0, from: 25, until: 60 }, { topic: 'generated', partition: 1, from: 25, until: 60 }] },
    ]);
    expect(sink.all()).toHaveLength(120);
  });
});

describe('engine as an idle daemon', () => {
  const root = tempDir();

  /** A MemoryLog that says when records arrive (as the Kafka source's read-ahead does). */
  class WakingLog extends MemoryLog {
    private waiters: Array<() => void> = [];
    override append(partition: number, n: number): void {
      super.append(partition, n);
      for (const w of this.waiters.splice(0)) w();
    }
    waitForData(timeoutMs: number, signal: AbortSignal): Promise<void> {
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); });
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** Runs a daemon until `until()` holds after a batch; fails the test if that takes a minute (the poll interval). */
  async function daemon(source: MemoryLog, batch: Record<string, number>, act: (engine: Engine<string>, batches: BatchStats[]) => void): Promise<BatchStats[]> {
    const batches: BatchStats[] = [];
    const engine: Engine<string> = new Engine(defineJob({
      name: 'idle', source, sinks: [memorySink<string>()], transform: values,
      batch: { pollIntervalMs: 60_000, ...batch },
    }), { checkpointDir: join(root, `cp-${Math.random()}`), onBatch: (s) => { batches.push(s); act(engine, batches); } });
    const run = engine.run();
    act(engine, batches);
    await run;
    return batches;
  }

  it('plans again as soon as the source has new records, not at the next poll', async () => {
    const source = new WakingLog('t', 1);
    const batches = await daemon(source, {}, (engine, done) => {
      // Batch 1 records the new partition's start; then the engine is idle (polling every
      // 60 s) until records arrive and wake it.
      if (done.length === 1) setTimeout(() => source.append(0, 3), 100);
      if (done.length === 2) engine.stop();
    });
    expect(batches.map((b) => b.records)).toEqual([0, 3]);
  }, 10_000);

  it('a batch filling up to minRecords waits for more records, and is due after maxWaitMs, not at the next poll', async () => {
    const source = new MemoryLog('t', 1);
    const batches = await daemon(source, { minRecords: 100, maxWaitMs: 400 }, (engine, done) => {
      if (done.length === 1) {
        source.append(0, 5);
        setTimeout(() => source.append(0, 5), 50);
      }
      if (done.length === 2) engine.stop();
    });
    expect(batches.map((b) => b.records)).toEqual([0, 10]);
  }, 10_000);

  it('stops at once when stop() comes while a plan is asking the source, not after the poll interval', async () => {
    let planning!: () => void;
    const asked = new Promise<void>((r) => { planning = r; });
    let armed = false; // from the second plan on: the first one records the new partition's start
    class SlowOffsets extends MemoryLog {
      override async offsets(parts: Parameters<MemoryLog['offsets']>[0], which: 'earliest' | 'latest'): Promise<OffsetMap> {
        await new Promise((r) => setTimeout(r, 50));
        if (armed) planning(); // a plan that was asking when the first batch committed (pipelined) counts too
        return super.offsets(parts, which);
      }
    }
    const engine = new Engine(defineJob({
      name: 'stop', source: new SlowOffsets('t', 1), sinks: [memorySink<string>()], transform: values, batch: { pollIntervalMs: 600_000 },
    }), { checkpointDir: join(root, 'stop'), onBatch: () => { armed = true; } });
    const run = engine.run();
    await asked;
    engine.stop(); // the plan finds nothing and would idle for 600 s without the stop check
    await run;
  }, 10_000);

  it('reports positions to the source without waiting for it; the last report has the final positions', async () => {
    const reports: OffsetMap[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    class SlowGroup extends MemoryLog {
      async committed(positions: OffsetMap): Promise<void> {
        reports.push(positions);
        await held; // a group commit that hangs: batches must go on meanwhile
      }
    }
    const source = new SlowGroup('t', 1);
    for (let i = 0; i < 4; i++) source.append(0, 10);
    const summary = await new Engine(defineJob({
      name: 'report', source, sinks: [memorySink<string>()], transform: values, batch: { maxRecordsPerPartition: 10 },
    }), { checkpointDir: join(root, 'report'), onBatch: (s) => { if (s.id === 4) setTimeout(release, 50); } }).run({ once: true });
    expect(summary.batches).toBe(4);
    // Batch 1's report was in flight through batches 2–4; then only the newest positions went.
    expect(reports).toEqual([{ 't/0': 10 }, { 't/0': 40 }]);
  });
});
