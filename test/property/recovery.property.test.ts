// Properties of the pure recovery decision, over any checkpoint state.
import * as fc from 'fast-check';
import { CodeChangedError, DataLossError, NewerFormatError, OtherJobError } from '../../recovery/errors';
import { partitionKey, type BatchRecord, type CheckpointMeta, type CheckpointView, type Range } from '../../checkpoint/model';
import { decideRecovery, type RecoveryInput } from '../../recovery/decide';
import { propertyParams } from './params';

const range = fc.record({ partition: fc.nat(3), from: fc.nat(1_000), len: fc.nat(100) })
  .map(({ partition, from, len }): Range => ({ topic: 't', partition, from, until: from + len }));

const ranges = fc.uniqueArray(range, { selector: (r) => r.partition, maxLength: 4 });

const inFlight = fc.option(fc.record({
  state: fc.constantFrom('planned' as const, 'staged' as const),
  staged: fc.boolean(),
  ranges,
  fingerprint: fc.constantFrom('f1', 'f2'),
}), { freq: 2 });

const inputs = fc.record({
  hasMeta: fc.boolean(),
  format: fc.integer({ min: 1, max: 2 }),
  job: fc.constantFrom('job', 'other'),
  source: fc.constantFrom('src', 'other-src'),
  stored: fc.constantFrom('f1', 'f2'),
  current: fc.constantFrom('f1', 'f2'),
  sinksChanged: fc.boolean(),
  inFlight,
  accept: fc.boolean(),
  strict: fc.boolean(),
  onDataLoss: fc.constantFrom('fail' as const, 'skip' as const),
  earliest: fc.array(fc.nat(1_100), { minLength: 4, maxLength: 4 }),
  lastCommitted: fc.nat(50),
}).map((g) => {
  const meta: CheckpointMeta | undefined = g.hasMeta ? {
    format: g.format, job: g.job, source: g.source, sinks: g.sinksChanged ? ['a'] : ['a', 'b'], fingerprint: g.stored,
    fingerprints: [{ fingerprint: g.stored, since: 1, note: 'first run' }], resets: [], createdAt: 1,
  } : undefined;
  const batch: BatchRecord | undefined = g.hasMeta && g.inFlight ? {
    id: g.lastCommitted + 1, state: g.inFlight.state, ranges: g.inFlight.ranges, fingerprint: g.inFlight.fingerprint, plannedAt: 1,
    ...(g.inFlight.state === 'staged' && g.inFlight.staged ? { stagedChunks: { outputs: 1 } } : {}),
  } : undefined;
  const view: CheckpointView = { meta, positions: g.hasMeta ? { 't/0': 5 } : {}, lastCommitted: g.hasMeta ? g.lastCommitted : 0, inFlight: batch, flight: batch ? [batch] : [] };
  const input: RecoveryInput = {
    dir: '/cp', view, fingerprint: g.current, acceptCodeChange: g.accept, format: 1, now: 2,
    earliest: Object.fromEntries(g.earliest.map((e, p) => [`t/${p}`, e])),
    job: { name: 'job', sourceId: 'src', sinks: ['b', 'a'], strictCodeVersion: g.strict, onDataLoss: g.onDataLoss },
  };
  return input;
});

describe('decideRecovery', () => {
  it('resumes, redelivers or re-runs exactly as the checkpoint says, or refuses with the right error', () => {
    fc.assert(fc.property(inputs, (input) => {
      const { view } = input;
      const meta = view.meta;
      let decision;
      try {
        decision = decideRecovery(input);
      } catch (err) {
        expect(meta).toBeDefined();
        if (err instanceof NewerFormatError) return expect(meta!.format).toBeGreaterThan(1);
        if (err instanceof OtherJobError) return expect(meta!.job !== 'job' || meta!.source !== 'src').toBe(true);
        if (err instanceof CodeChangedError) {
          const changed = meta!.fingerprint !== input.fingerprint || meta!.sinks.length !== 2;
          expect(changed).toBe(true);
          if (view.inFlight) {
            expect(input.acceptCodeChange).toBe(false);
            // The message names both fingerprints, the batch in flight and its ranges, and the ways on.
            if (meta!.fingerprint !== input.fingerprint) {
              expect(err.message).toContain(meta!.fingerprint);
              expect(err.message).toContain(input.fingerprint);
            }
            expect(err.message).toContain(`Batch ${view.inFlight.id}`);
            for (const r of view.inFlight.ranges) expect(err.message).toContain(`${partitionKey(r)} [${r.from}, ${r.until})`);
            expect(err.message).toContain('--accept-code-change');
            expect(err.message).toContain('tidemark reset');
          } else {
            expect(input.job.strictCodeVersion).toBe(true);
          }
          return;
        }
        if (err instanceof DataLossError) {
          expect(input.job.onDataLoss).toBe('fail');
          for (const r of err.lost) expect(r.from).toBeLessThan(input.earliest[partitionKey(r)]!);
          return;
        }
        throw err;
      }
      if (!meta) {
        expect(decision.meta?.fingerprint).toBe(input.fingerprint);
        expect(decision.lastCommitted).toBe(0);
        expect(decision.redeliver ?? decision.rerun).toBeUndefined();
        return;
      }
      expect(meta.format).toBeLessThanOrEqual(1);
      expect(decision.resumeAt).toEqual(view.positions);
      expect(decision.lastCommitted).toBe(view.lastCommitted);
      // The fingerprint is recorded when it changed; the history only grows.
      if (meta.fingerprint !== input.fingerprint) {
        expect(decision.meta!.fingerprint).toBe(input.fingerprint);
        expect(decision.meta!.fingerprints.map((f) => f.fingerprint)).toEqual([meta.fingerprint, input.fingerprint]);
      } else if (decision.meta) {
        expect(decision.meta.fingerprints).toEqual(meta.fingerprints);
      }
      const b = view.inFlight;
      if (!b) return expect(decision.redeliver ?? decision.rerun).toBeUndefined();
      if (b.state === 'staged' && b.stagedChunks) {
        expect(decision.redeliver).toBe(b);
        expect(decision.rerun).toBeUndefined();
        return;
      }
      // A re-run keeps exactly the recorded ranges, except what the source no longer has, recorded as lost.
      const rerun = decision.rerun!;
      expect(rerun.id).toBe(b.id);
      expect(rerun.state).toBe('planned');
      expect(rerun.ranges.map((r) => [r.partition, r.until])).toEqual(b.ranges.map((r) => [r.partition, r.until]));
      b.ranges.forEach((r, i) => {
        const kept = rerun.ranges[i]!;
        const lost = (rerun.lost ?? []).filter((l) => l.partition === r.partition);
        if (lost.length === 0) return expect(kept.from).toBe(r.from);
        expect(input.job.onDataLoss).toBe('skip');
        expect(lost).toEqual([{ ...r, until: kept.from }]);
        expect(kept.from).toBe(Math.min(input.earliest[partitionKey(r)]!, r.until));
      });
    }), propertyParams(5_000));
  });
});
