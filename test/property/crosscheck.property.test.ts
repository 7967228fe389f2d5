// The cross-check at start (recovery/crosscheck.ts): a checkpoint behind what it already
// told the source or the sinks has lost synced writes; a faithful one never trips it.
import * as fc from 'fast-check';
import type { BatchRecord, CheckpointMeta, CheckpointView } from '../../checkpoint/model';
import { crossCheck, formatMark, idsUsedBeforeReset, parseMark } from '../../recovery/crosscheck';
import { propertyParams } from './params';

const meta = (id: string, resets: number): CheckpointMeta => ({
  format: 2, checkpointId: id, job: 'j', source: 's', sinks: ['a'], fingerprint: 'f', fingerprints: [], createdAt: 0,
  resets: Array.from({ length: resets }, (_, i) => ({ at: i, before: {}, after: {} })),
});

const batch = (id: number, state: BatchRecord['state']): BatchRecord => ({ id, state, ranges: [], fingerprint: 'f', plannedAt: 0 });

const view = (lastCommitted: number, resets: number, inFlight?: BatchRecord): CheckpointView => ({
  meta: meta('cp1', resets), positions: { 't/0': lastCommitted * 10 }, lastCommitted, inFlight, flight: inFlight ? [inFlight] : [],
});

const mark = (checkpoint: string, resets: number, b: number) => ({ partition: 't/0', offset: b * 10, metadata: formatMark({ checkpoint, resets, batch: b }) });

describe('crossCheck', () => {
  it('parses what it formats, and nothing tidemark did not write', () => {
    fc.assert(fc.property(fc.uuid(), fc.nat(), fc.nat(), (checkpoint, resets, b) => {
      expect(parseMark(formatMark({ checkpoint, resets, batch: b }))).toEqual({ checkpoint, resets, batch: b });
    }), propertyParams(200));
    for (const other of [null, '', 'tidemark:x:1', 'some tool', 'tidemark:a:b:c', 'tidemark:x:1:2:3']) expect(parseMark(other)).toBeUndefined();
  });

  it('trips exactly when a mark of this checkpoint and reset count names a batch past the last committed one', () => {
    fc.assert(fc.property(
      fc.nat(50), fc.nat(3), fc.constantFrom('cp1', 'cp2'), fc.nat(4), fc.integer({ min: 0, max: 60 }),
      (lastCommitted, resets, checkpoint, markResets, b) => {
        const lost = crossCheck({ dir: 'cp', view: view(lastCommitted, resets), reportedTo: 'Kafka group g', reported: [mark(checkpoint, markResets, b)], delivered: {} });
        const expected = checkpoint === 'cp1' && (markResets > resets || (markResets === resets && b > lastCommitted));
        expect(lost !== undefined).toBe(expected);
        if (lost) {
          expect(lost.detail).toContain('Kafka group g');
          expect(lost.detail).toContain(`last committed batch is ${lastCommitted}`);
          expect(lost.reportedPositions).toEqual({ 't/0': b * 10 });
        }
      },
    ), propertyParams(500));
  });

  it("trips when a sink's ledger holds a batch the checkpoint neither committed nor holds staged", () => {
    fc.assert(fc.property(
      fc.nat(50), fc.option(fc.constantFrom('planned' as const, 'staged' as const)), fc.integer({ min: 0, max: 60 }),
      (lastCommitted, state, delivered) => {
        const inFlight = state ? batch(lastCommitted + 1, state) : undefined;
        const lost = crossCheck({ dir: 'cp', view: view(lastCommitted, 0, inFlight), reported: [], delivered: { pg: delivered } });
        const fine = delivered <= lastCommitted || (delivered === lastCommitted + 1 && state === 'staged');
        expect(lost !== undefined).toBe(!fine);
        if (lost) expect(lost.detail).toContain(`sink pg's ledger holds batch ${delivered}`);
      },
    ), propertyParams(500));
  });

  it('after a reset, the ids the marks of earlier resets name are used up, and no longer count as lost', () => {
    fc.assert(fc.property(fc.nat(50), fc.integer({ min: 1, max: 3 }), fc.nat(3), fc.integer({ min: 0, max: 60 }), (lastCommitted, resets, markResets, b) => {
      const v = view(lastCommitted, resets);
      const reported = [mark('cp1', markResets, b)];
      const used = idsUsedBeforeReset(v, reported);
      expect(used).toBe(markResets < resets && b > lastCommitted ? b : undefined);
      if (used !== undefined) expect(crossCheck({ dir: 'cp', view: { ...v, lastCommitted: used }, reported, delivered: {} })).toBeUndefined();
    }), propertyParams(300));
    expect(idsUsedBeforeReset(view(2, 0), [mark('cp1', 0, 5)])).toBeUndefined(); // no reset: lost, not used
  });

  it('ignores marks when the checkpoint has no id (created before ids), and a new checkpoint (the marker file and the sinks catch those)', () => {
    const old: CheckpointView = { ...view(3, 0), meta: { ...meta('x', 0), checkpointId: undefined } };
    expect(crossCheck({ dir: 'cp', view: old, reported: [mark('x', 0, 9)], delivered: {} })).toBeUndefined();
    const fresh: CheckpointView = { meta: undefined, positions: {}, lastCommitted: 0, inFlight: undefined, flight: [] };
    expect(crossCheck({ dir: 'cp', view: fresh, reported: [], delivered: {} })).toBeUndefined();
    expect(crossCheck({ dir: 'cp', view: fresh, reported: [], delivered: { pg: 2 } })).toBeUndefined();
  });
});
