// The status page's data (src/status.ts): rates from the committed batches between samples,
// and bounds that hold whatever the job (partitions, ranges, history).
import type { EngineCheckpoint, EngineStatus } from '../../src/engine';
import type { Range } from '../../checkpoint/model';
import { StatusPage, topLag } from '../../src/status';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-status-unit-');

function page(status: () => EngineStatus, checkpoint: () => EngineCheckpoint, clock: { t: number }): StatusPage {
  return new StatusPage({
    engine: { status, checkpoint }, job: 'j', checkpointDir: root, checkpointBytes: () => 4096,
    readiness: () => ({ ready: true, reason: 'ok' }), now: () => clock.t,
  });
}

const range = (partition: number): Range => ({ topic: 't', partition, from: 0, until: 10 });

it('turns committed batches into records/s per sample, and keeps the most lagging partitions only', () => {
  const clock = { t: 1_000_000 };
  const lag: Record<string, number> = {};
  for (let p = 0; p < 1000; p++) lag[`t/${p}`] = p % 100;
  const status: EngineStatus = { recovered: true, stopping: false, lockHeld: true, lastCommitted: 0, positions: {}, lag, progressAt: clock.t };
  const p = page(() => status, () => ({ meta: undefined, inFlight: undefined }), clock);
  p.sample();
  p.observe({ id: 1, ranges: Array.from({ length: 40 }, (_, i) => range(i)), records: 300, bytesIn: 0, outputs: 150, bytesOut: 0, deadLetters: 0, recovered: true, durations: { plan: 1 }, lag: {} });
  clock.t += 2_000;
  p.sample();
  const s = p.json();
  expect(s.series.t).toEqual([1000, 1002]);
  expect(s.series.recordsIn).toEqual([0, 150]);
  expect(s.series.recordsOut).toEqual([0, 75]);
  expect(s.series.checkpointBytes).toEqual([4096, 4096]);
  expect(s.series.lag.map((l) => l.partition)).toEqual(['t/199', 't/299', 't/399', 't/499', 't/599', 't/699', 't/799', 't/899', 't/99', 't/999']);
  expect(s.series.lag[0]!.values).toEqual([99, 99]);
  expect(s.batches[0]!.ranges).toHaveLength(5);
  expect(s.batches[0]!.rangeCount).toBe(40);
  expect(s.recoveries).toEqual({ count: 1, batches: [1] });
});

it('keeps a bounded history however long it runs', () => {
  const clock = { t: 0 };
  const fingerprints = Array.from({ length: 100 }, (_, i) => ({ fingerprint: `f${i}`, since: i, note: 'code change, nothing in flight' }));
  const checkpoint: EngineCheckpoint = {
    meta: { format: 2, job: 'j', source: 's', sinks: ['files'], fingerprint: 'f99', fingerprints, resets: [], createdAt: 0 },
    inFlight: { id: 2001, state: 'planned', ranges: Array.from({ length: 50 }, (_, i) => range(i)), fingerprint: 'f99', plannedAt: 0, staged: null },
  };
  const status: EngineStatus = { recovered: true, stopping: false, lockHeld: true, lastCommitted: 2000, positions: {}, lag: { 't/0': 1 }, progressAt: 0 };
  const p = page(() => status, () => checkpoint, clock);
  for (let i = 1; i <= 2000; i++) {
    p.observe({ id: i, ranges: [range(0)], records: 1, bytesIn: 0, outputs: 1, bytesOut: 0, deadLetters: 0, recovered: false, durations: {}, lag: {} });
    clock.t += 1_000;
    p.sample();
  }
  const s = p.json();
  expect(s.series.t).toHaveLength(300);
  expect(s.batches).toHaveLength(120);
  expect(s.batches[0]!.id).toBe(2000);
  expect(s.job.fingerprints.map((f) => f.fingerprint)).toEqual(fingerprints.slice(-20).map((f) => f.fingerprint));
  expect(s.inFlight).toMatchObject({ id: 2001, rangeCount: 50 });
  expect(s.inFlight!.ranges).toHaveLength(5);
  expect(s.totals).toEqual({ batches: 2000, records: 2000, outputs: 2000 });
});

it('orders lag by size, then by partition, and takes at most n', () => {
  expect([...topLag({ 'a/1': 5, 'a/0': 5, 'b/0': 9, 'c/0': 0 }, 3)]).toEqual([['b/0', 9], ['a/0', 5], ['a/1', 5]]);
});
