// planRanges, by example (the properties are in test/property/).
import { DataLossError } from '../../recovery/errors';
import { SourceWentBackwardsError } from '../../src/errors';
import { advancePositions, comparePartitionKeys, planRanges, type PlanInput, type PlanLimits } from '../../src/planner';

const limits: PlanLimits = { maxRecordsPerPartition: 100, maxBatchBytes: 1 << 30, minRecords: 1, maxWaitMs: 1000 };

const input = (over: Partial<PlanInput>): PlanInput => ({
  positions: {}, starting: {}, earliest: {}, latest: {}, limits, avgRecordBytes: 100, waitedMs: 0, onDataLoss: 'fail', ...over,
});

const batch = (over: Partial<PlanInput>) => {
  const plan = planRanges(input(over));
  if (plan.kind !== 'batch') throw new Error(`expected a batch, got ${JSON.stringify(plan)}`);
  return plan;
};

describe('planRanges', () => {
  it('reads from the positions to the latest offsets, one range per partition with new data', () => {
    const plan = batch({ positions: { 't/0': 10, 't/1': 5, 't/2': 7 }, latest: { 't/0': 30, 't/1': 5, 't/2': 8 } });
    expect(plan.ranges).toEqual([
      { topic: 't', partition: 0, from: 10, until: 30 },
      { topic: 't', partition: 2, from: 7, until: 8 },
    ]);
    expect(plan.records).toBe(21);
    expect(plan.lost).toEqual([]);
  });

  it('caps each partition at maxRecordsPerPartition', () => {
    const plan = batch({ positions: { 't/0': 0, 't/1': 50 }, latest: { 't/0': 1000, 't/1': 120 } });
    expect(plan.ranges).toEqual([
      { topic: 't', partition: 0, from: 0, until: 100 },
      { topic: 't', partition: 1, from: 50, until: 120 },
    ]);
  });

  it('shares maxBatchBytes in proportion to each partition\'s backlog, at least one record each', () => {
    // Budget: 10_000 bytes / 100 bytes per record = 100 records; wanted 100 + 50 + 2 = 152.
    const plan = batch({
      limits: { ...limits, maxBatchBytes: 10_000 },
      positions: { 't/0': 0, 't/1': 0, 't/2': 0 }, latest: { 't/0': 500, 't/1': 50, 't/2': 2 },
    });
    expect(plan.ranges.map((r) => r.until - r.from)).toEqual([65, 32, 1]);
    expect(plan.records).toBe(98);
    expect(plan.records).toBeLessThanOrEqual(100);
  });

  it('uses the estimated record size for the byte budget', () => {
    const big = batch({ limits: { ...limits, maxBatchBytes: 10_000 }, avgRecordBytes: 1000, positions: { 't/0': 0 }, latest: { 't/0': 100 } });
    expect(big.ranges).toEqual([{ topic: 't', partition: 0, from: 0, until: 10 }]);
    // A record larger than the whole budget still moves: one record.
    const huge = batch({ limits: { ...limits, maxBatchBytes: 10 }, avgRecordBytes: 1_000_000, positions: { 't/0': 0, 't/1': 0 }, latest: { 't/0': 5, 't/1': 5 } });
    expect(huge.ranges.map((r) => r.until - r.from)).toEqual([1, 1]);
  });

  it('waits while fewer than minRecords are there and maxWaitMs has not passed, then goes', () => {
    const over = { limits: { ...limits, minRecords: 50, maxWaitMs: 1000 }, positions: { 't/0': 0, 't/1': 0 }, latest: { 't/0': 10, 't/1': 20 } };
    expect(planRanges(input({ ...over, waitedMs: 999 }))).toEqual({ kind: 'wait', available: 30 });
    expect(batch({ ...over, waitedMs: 1000 }).records).toBe(30);
    expect(batch({ ...over, latest: { 't/0': 30, 't/1': 20 }, waitedMs: 0 }).records).toBe(50);
  });

  it('waits when nothing is new, however long it waited', () => {
    expect(planRanges(input({ positions: { 't/0': 5 }, latest: { 't/0': 5 }, waitedMs: Infinity }))).toEqual({ kind: 'wait', available: 0 });
    expect(planRanges(input({ latest: {} }))).toEqual({ kind: 'wait', available: 0 });
  });

  it('pins a new partition with a range, even an empty one, starting at its starting offset', () => {
    const plan = batch({
      positions: { 't/0': 5 }, latest: { 't/0': 5, 't/1': 40, 't/2': 9 }, starting: { 't/1': 30, 't/2': 9 },
      limits: { ...limits, minRecords: 1000 }, waitedMs: 0,
    });
    expect(plan.ranges).toEqual([
      { topic: 't', partition: 1, from: 30, until: 40 },
      { topic: 't', partition: 2, from: 9, until: 9 },
    ]);
    // The pinned start becomes the position: the partition is known from then on.
    expect(advancePositions({ 't/0': 5 }, plan.ranges)).toEqual({ 't/0': 5, 't/1': 40, 't/2': 9 });
  });

  it('a new partition with no starting offset starts at earliest, and never beyond latest', () => {
    expect(batch({ latest: { 't/0': 20 }, earliest: { 't/0': 15 } }).ranges).toEqual([{ topic: 't', partition: 0, from: 15, until: 20 }]);
    expect(batch({ latest: { 't/0': 20 }, starting: { 't/0': 50 } }).ranges).toEqual([{ topic: 't', partition: 0, from: 20, until: 20 }]);
  });

  it('offsets below earliest are data loss: fail throws naming them, and plans nothing', () => {
    const err = (() => {
      try {
        planRanges(input({ positions: { 't/0': 10, 't/1': 0 }, earliest: { 't/0': 25, 't/1': 0 }, latest: { 't/0': 40, 't/1': 5 } }));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(DataLossError);
    expect(err).toMatchObject({ code: 'TIDEMARK_DATA_LOSS', exitCode: 5, lost: [{ topic: 't', partition: 0, from: 10, until: 25 }] });
    expect((err as Error).message).toContain('t/0 [10, 25)');
  });

  it('under skip, data loss is reported and the range starts at earliest (pinned even with nothing to read)', () => {
    const plan = batch({
      onDataLoss: 'skip', limits: { ...limits, minRecords: 1000 },
      positions: { 't/0': 10, 't/1': 3 }, earliest: { 't/0': 25, 't/1': 8 }, latest: { 't/0': 40, 't/1': 8 },
    });
    expect(plan.lost).toEqual([{ topic: 't', partition: 0, from: 10, until: 25 }, { topic: 't', partition: 1, from: 3, until: 8 }]);
    expect(plan.ranges).toEqual([{ topic: 't', partition: 0, from: 25, until: 40 }, { topic: 't', partition: 1, from: 8, until: 8 }]);
  });

  it('a partition that now ends below its position went backwards: an error, never a silent reset', () => {
    expect(() => planRanges(input({ positions: { 'orders/3': 100 }, latest: { 'orders/3': 40 } }))).toThrow(SourceWentBackwardsError);
    expect(() => planRanges(input({ positions: { 'orders/3': 100 }, latest: { 'orders/3': 40 } }))).toThrow(/orders\/3 now ends at offset 40, below the checkpoint's position 100/);
    try {
      planRanges(input({ positions: { 'orders/3': 100 }, latest: { 'orders/3': 40 } }));
    } catch (e) {
      expect(e).toMatchObject({ code: 'TIDEMARK_SOURCE_WENT_BACKWARDS', exitCode: 11 });
    }
  });

  it('orders ranges by topic, then partition number (not as strings)', () => {
    const plan = batch({ latest: { 'b/10': 1, 'b/2': 1, 'a/1': 1, 'a.x/0': 1 }, starting: { 'b/10': 0, 'b/2': 0, 'a/1': 0, 'a.x/0': 0 } });
    expect(plan.ranges.map((r) => `${r.topic}/${r.partition}`)).toEqual(['a/1', 'a.x/0', 'b/2', 'b/10']);
    expect(['t/10', 't/9', 's/1'].sort(comparePartitionKeys)).toEqual(['s/1', 't/9', 't/10']);
  });

  it('keeps topics that contain slashes apart from partition numbers', () => {
    const plan = batch({ positions: { 'a/b/3': 0 }, latest: { 'a/b/3': 2 } });
    expect(plan.ranges).toEqual([{ topic: 'a/b', partition: 3, from: 0, until: 2 }]);
  });
});
