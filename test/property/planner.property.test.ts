// Properties of the pure planner: continuity, limits, progress.
import * as fc from 'fast-check';
import { DataLossError } from '../../recovery/errors';
import { SourceWentBackwardsError } from '../../src/errors';
import { partitionKey } from '../../checkpoint/model';
import { advancePositions, planRanges, type PlanInput } from '../../src/planner';
import { propertyParams } from './params';

const partitionState = fc.record({
  known: fc.boolean(),
  position: fc.nat(1_000),
  earliest: fc.nat(1_000),
  ahead: fc.nat(5_000),
  starting: fc.nat(6_000),
});

const inputs = fc.record({
  parts: fc.array(partitionState, { minLength: 1, maxLength: 6 }),
  maxRecordsPerPartition: fc.integer({ min: 1, max: 2_000 }),
  maxBatchBytes: fc.integer({ min: 1, max: 1_000_000 }),
  avgRecordBytes: fc.integer({ min: 1, max: 5_000 }),
  minRecords: fc.integer({ min: 1, max: 100 }),
  maxWaitMs: fc.nat(1_000),
  waitedMs: fc.nat(2_000),
  onDataLoss: fc.constantFrom('fail' as const, 'skip' as const),
}).map((g) => {
  const positions: Record<string, number> = {};
  const starting: Record<string, number> = {};
  const earliest: Record<string, number> = {};
  const latest: Record<string, number> = {};
  g.parts.forEach((p, i) => {
    const key = partitionKey({ topic: i % 2 ? 'b' : 'a', partition: i });
    if (p.known) positions[key] = p.position;
    else starting[key] = p.starting;
    earliest[key] = p.earliest;
    latest[key] = Math.max(p.earliest, p.position) + p.ahead;
  });
  const input: PlanInput = {
    positions, starting, earliest, latest, avgRecordBytes: g.avgRecordBytes, waitedMs: g.waitedMs, onDataLoss: g.onDataLoss,
    limits: { maxRecordsPerPartition: g.maxRecordsPerPartition, maxBatchBytes: g.maxBatchBytes, minRecords: g.minRecords, maxWaitMs: g.maxWaitMs },
  };
  return input;
});

describe('planRanges', () => {
  it('plans ranges that continue every position, stay within the source and the limits', () => {
    fc.assert(fc.property(inputs, (input) => {
      let plan;
      try {
        plan = planRanges(input);
      } catch (err) {
        // Only a data loss under 'fail' may stop planning here (latest never falls below a position).
        expect(err).toBeInstanceOf(DataLossError);
        expect(input.onDataLoss).toBe('fail');
        return;
      }
      if (plan.kind === 'wait') {
        expect(Object.keys(input.starting)).toHaveLength(0);
        return;
      }
      const lostByKey = new Map(plan.lost.map((r) => [partitionKey(r), r]));
      const seen = new Set<string>();
      for (const r of plan.ranges) {
        const key = partitionKey(r);
        expect(seen.has(key)).toBe(false); // one range per partition
        seen.add(key);
        const start = input.positions[key] ?? Math.min(input.starting[key]!, input.latest[key]!);
        const lost = lostByKey.get(key);
        // Continuity: the range starts at the position, or right after a recorded loss that starts there.
        if (lost) {
          expect(lost.from).toBe(start);
          expect(r.from).toBe(lost.until);
          expect(input.onDataLoss).toBe('skip');
        } else {
          expect(r.from).toBe(start);
        }
        expect(r.from).toBeGreaterThanOrEqual(input.earliest[key]!);
        expect(r.until).toBeGreaterThanOrEqual(r.from);
        expect(r.until).toBeLessThanOrEqual(input.latest[key]!);
        expect(r.until - r.from).toBeLessThanOrEqual(input.limits.maxRecordsPerPartition);
      }
      for (const key of Object.keys(input.starting)) expect(seen.has(key)).toBe(true); // new partitions are pinned
      const records = plan.ranges.reduce((n, r) => n + r.until - r.from, 0);
      const budget = Math.max(1, Math.floor(input.limits.maxBatchBytes / input.avgRecordBytes));
      expect(records).toBeLessThanOrEqual(Math.max(budget, 0) + plan.ranges.length);
    }), propertyParams(2_000));
  });

  it('reaches the end of every partition in finitely many batches, without gap or overlap', () => {
    fc.assert(fc.property(inputs, (input) => {
      const backlog = Object.keys(input.latest).reduce((n, k) => n + input.latest[k]! - Math.min(input.positions[k] ?? 0, input.latest[k]!), 0);
      fc.pre(backlog / Math.min(input.limits.maxRecordsPerPartition, Math.floor(input.limits.maxBatchBytes / input.avgRecordBytes) || 1) < 300);
      let positions = { ...input.positions };
      const covered = new Map<string, number>();
      for (let i = 0; i < 10_000; i++) {
        let plan;
        try {
          plan = planRanges({ ...input, positions, starting: input.starting, waitedMs: Number.MAX_SAFE_INTEGER });
        } catch (err) {
          expect(err).toBeInstanceOf(DataLossError);
          return;
        }
        if (plan.kind === 'wait') break;
        for (const r of plan.ranges) {
          const key = partitionKey(r);
          const prev = covered.get(key);
          if (prev !== undefined) expect(r.from).toBe(prev);
          covered.set(key, r.until);
        }
        const next = advancePositions(positions, plan.ranges);
        if (plan.records === 0 && JSON.stringify(next) === JSON.stringify(positions)) break;
        positions = next;
      }
      for (const key of Object.keys(input.latest)) expect(positions[key]).toBe(input.latest[key]);
    }), propertyParams(300));
  });

  it('refuses a source whose end fell below a position', () => {
    fc.assert(fc.property(fc.nat(1_000), fc.integer({ min: 1, max: 1_000 }), (latest, behind) => {
      expect(() => planRanges({
        positions: { 't/0': latest + behind }, starting: {}, earliest: { 't/0': 0 }, latest: { 't/0': latest },
        limits: { maxRecordsPerPartition: 10, maxBatchBytes: 1_000, minRecords: 1, maxWaitMs: 0 }, avgRecordBytes: 10, waitedMs: 0, onDataLoss: 'skip',
      })).toThrow(SourceWentBackwardsError);
    }), propertyParams(200));
  });
});
