// Properties of the batch-size controller (batch.targetMs, src/batch-size.ts) against a
// simulated sink whose time per batch is a fixed cost plus records at a throughput, with
// noise: it converges on the target, never leaves [1, maxRecords], and recovers after a
// slow sink speeds up. Plus the planner: maxRecords caps a plan and nothing else changes.
import * as fc from 'fast-check';
import { FIRST_SIZE, firstBatchSizer, nextBatchSizer, type BatchSizer } from '../../src/batch-size';
import { planRanges } from '../../src/planner';
import { prng } from '../support/prng';
import { propertyParams } from './params';

interface SinkModel {
  /** ms per batch whatever its size. */
  readonly fixedMs: number;
  /** Records per ms. */
  readonly perMs: number;
}

/** Runs `steps` batches, each as large as the sizer allows (a backlog), timed by `model` with ±`noise` relative jitter. */
function drive(sizer: BatchSizer, model: SinkModel, steps: number, target: number, max: number, noise: number, rand: () => number): { sizer: BatchSizer; times: number[]; sizes: number[] } {
  const times: number[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < steps; i++) {
    const records = sizer.size;
    const ms = (model.fixedMs + records / model.perMs) * (1 + noise * (2 * rand() - 1));
    times.push(ms);
    sizes.push(records);
    sizer = nextBatchSizer(sizer, { records, ms }, target, max);
  }
  return { sizer, times, sizes };
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** A sink and a target the bounds allow: the size that meets the target lies well inside [1, max]. */
const reachable = fc.record({
  fixedMs: fc.double({ min: 0, max: 50, noNaN: true }),
  perMs: fc.double({ min: 0.5, max: 500, noNaN: true }),
  target: fc.integer({ min: 100, max: 5_000 }),
  seed: fc.integer(),
}).filter((g) => g.target > g.fixedMs * 2 && (g.target - g.fixedMs) * g.perMs >= 10);

describe('batch-size controller', () => {
  it('converges on a steady sink: the mean time of the last 10 batches is within 10% of the target', () => {
    fc.assert(fc.property(reachable, ({ fixedMs, perMs, target, seed }) => {
      const { times } = drive(firstBatchSizer(10_000_000), { fixedMs, perMs }, 60, target, 10_000_000, 0.05, prng(seed));
      const late = mean(times.slice(-10));
      expect(Math.abs(late - target) / target).toBeLessThan(0.1);
    }), propertyParams(300));
  });

  it('never leaves [1, maxRecords], whatever the batches measure', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 1, max: 10_000 }),
      fc.array(fc.record({ records: fc.integer({ min: 0, max: 1_000_000 }), ms: fc.double({ min: 0, max: 1e6, noNaN: true }) }), { maxLength: 50 }),
      (max, target, batches) => {
        let sizer = firstBatchSizer(max);
        expect(sizer.size).toBeGreaterThanOrEqual(1);
        expect(sizer.size).toBeLessThanOrEqual(max);
        for (const b of batches) {
          sizer = nextBatchSizer(sizer, b, target, max);
          expect(Number.isInteger(sizer.size)).toBe(true);
          expect(sizer.size).toBeGreaterThanOrEqual(1);
          expect(sizer.size).toBeLessThanOrEqual(max);
        }
      },
    ), propertyParams(500));
  });

  it('recovers after a slow sink speeds up: back within 10% of the target, and grown past the slow size', () => {
    fc.assert(fc.property(reachable, fc.integer({ min: 10, max: 100 }), ({ fixedMs, perMs, target, seed }, slowdown) => {
      const rand = prng(seed);
      const max = 10_000_000;
      const slow = drive(firstBatchSizer(max), { fixedMs, perMs: perMs / slowdown }, 40, target, max, 0.05, rand);
      const fast = drive(slow.sizer, { fixedMs, perMs }, 30, target, max, 0.05, rand);
      expect(Math.abs(mean(fast.times.slice(-10)) - target) / target).toBeLessThan(0.1);
      expect(mean(fast.sizes.slice(-10))).toBeGreaterThan(mean(slow.sizes.slice(-10)));
    }), propertyParams(300));
  });

  it('a sink whose cost per write is above the target: batches stop shrinking instead of going to one record', () => {
    fc.assert(fc.property(fc.integer({ min: 10, max: 1_000 }), fc.double({ min: 2, max: 20, noNaN: true }), fc.integer(), (target, over, seed) => {
      // Records are almost free; every write costs `over` targets.
      const { sizes } = drive(firstBatchSizer(10_000_000), { fixedMs: target * over, perMs: 1e6 }, 40, target, 10_000_000, 0.02, prng(seed));
      expect(Math.min(...sizes.slice(-10))).toBeGreaterThanOrEqual(FIRST_SIZE / 2);
    }), propertyParams(300));
  });

  it('a source that keeps batches small does not wind the size up past what it measured', () => {
    let sizer = firstBatchSizer(1_000_000);
    for (let i = 0; i < 100; i++) sizer = nextBatchSizer(sizer, { records: 10, ms: 1 }, 1_000, 1_000_000);
    // 10 records in 1 ms: 10,000 fit the target; the integral did not grow while the source, not the size, bound the batch.
    expect(sizer.size).toBe(10_000);
    expect(sizer.integral).toBe(0);
  });

  it('the planner takes maxRecords as one more budget, and plans as before without it', () => {
    fc.assert(fc.property(fc.array(fc.nat(5_000), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 3_000 }), (ahead, maxRecords) => {
      const latest = Object.fromEntries(ahead.map((n, p) => [`t/${p}`, n]));
      const positions = Object.fromEntries(ahead.map((_, p) => [`t/${p}`, 0]));
      const base = {
        positions, starting: {}, earliest: {}, latest, avgRecordBytes: 100, waitedMs: 10_000, onDataLoss: 'fail' as const,
        limits: { maxRecordsPerPartition: 2_000, maxBatchBytes: 64 << 20, minRecords: 1, maxWaitMs: 0 },
      };
      const unbounded = planRanges(base);
      const bounded = planRanges({ ...base, maxRecords });
      const total = ahead.reduce((a, n) => a + Math.min(n, 2_000), 0);
      if (total === 0) {
        expect(bounded).toEqual(unbounded);
        return;
      }
      expect(bounded.kind).toBe('batch');
      if (bounded.kind !== 'batch' || unbounded.kind !== 'batch') return;
      expect(unbounded.records).toBe(total);
      // Over budget the planner shares it by backlog, at least one record per partition with any.
      expect(bounded.records).toBeLessThanOrEqual(maxRecords + ahead.filter((n) => n > 0).length);
      if (maxRecords >= total) expect(bounded).toEqual(unbounded);
    }), propertyParams(300));
  });
});
