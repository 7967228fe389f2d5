// decideReset (recovery/reset.ts), by example: what `tidemark reset` writes, or why it refuses.
import { BadConfigError } from '../../checkpoint/errors';
import { RETAIN_HISTORY, type BatchRecord, type CheckpointMeta, type CheckpointView } from '../../checkpoint/model';
import { decideRecovery } from '../../recovery/decide';
import { NewerFormatError, OtherJobError } from '../../recovery/errors';
import { decideReset, type ResetInput } from '../../recovery/reset';

const DIR = '/var/lib/tidemark/cp';
const meta: CheckpointMeta = {
  format: 1, job: 'clicks', source: 'embedded:clicks', sinks: ['files'], fingerprint: 'sha256:a',
  fingerprints: [{ fingerprint: 'sha256:a', since: 100, note: 'first run' }], resets: [], createdAt: 100,
};
const inFlight: BatchRecord = {
  id: 8, state: 'staged', ranges: [{ topic: 'clicks', partition: 0, from: 40, until: 50 }], fingerprint: 'sha256:a', plannedAt: 1, stagedChunks: { files: 1 },
};
const view = (over: Partial<CheckpointView> = {}): CheckpointView => ({ meta, positions: { 'clicks/0': 40, 'clicks/1': 25 }, lastCommitted: 7, inFlight: undefined, flight: over.inFlight ? [over.inFlight] : [], ...over });
const reset = (over: Partial<ResetInput>) => decideReset({
  dir: DIR, view: view(), format: 1, discardInFlight: false, requested: {}, to: 'file o.json', now: 5000, ...over,
});

describe('decideReset', () => {
  it('moves the named partitions, keeps the others, adds new ones (when allowed), and records the reset in the meta', () => {
    const d = reset({ requested: { 'clicks/0': 10, 'clicks/2': 3 }, allowNewPartitions: true });
    expect(d.after).toEqual({ 'clicks/0': 10, 'clicks/1': 25, 'clicks/2': 3 });
    expect(d.changes).toEqual([
      { partition: 'clicks/0', before: 40, after: 10 },
      { partition: 'clicks/1', before: 25, after: 25 },
      { partition: 'clicks/2', before: undefined, after: 3 },
    ]);
    expect(d).toMatchObject({ changed: true, discard: [], lastCommitted: 7 });
    // Only the partitions that moved are recorded: with many partitions the rest would make each entry huge.
    expect(d.meta).toEqual({ ...meta, resets: [{ at: 5000, to: 'file o.json', before: { 'clicks/0': 40 }, after: { 'clicks/0': 10, 'clicks/2': 3 } }] });
  });

  it('keeps the newest RETAIN_HISTORY resets, counting the ones it prunes', () => {
    let m: CheckpointMeta = meta;
    for (let i = 1; i <= RETAIN_HISTORY + 7; i++) {
      m = decideReset({
        dir: DIR, view: view({ meta: m }), format: 1, discardInFlight: false, requested: { 'clicks/0': i }, to: `file ${i}.json`, now: i,
      }).meta;
      expect(m.resets.length).toBe(Math.min(i, RETAIN_HISTORY));
      expect(m.resetsPruned ?? 0).toBe(Math.max(0, i - RETAIN_HISTORY));
    }
    expect(m.resets[0]!.to).toBe('file 8.json');
    expect(m.resets.at(-1)!.to).toBe(`file ${RETAIN_HISTORY + 7}.json`);
    expect(m.resetsPruned).toBe(7);
  });

  it('refuses a partition neither the checkpoint nor the source knows, unless allowed', () => {
    const typo = () => reset({ requested: { 'clikcs/0': 10 } });
    expect(typo).toThrow(BadConfigError);
    expect(typo).toThrow('--to file o.json: clikcs/0 is not a partition of the checkpoint (it knows clicks/0, clicks/1). Nothing was changed.');
    // A partition of the source that no batch has read yet is known.
    expect(reset({ requested: { 'clicks/2': 0 }, sourcePartitions: ['clicks/0', 'clicks/1', 'clicks/2'] }).after).toMatchObject({ 'clicks/2': 0 });
    expect(() => reset({ requested: { 'clicks/3': 0 }, sourcePartitions: ['clicks/2'] })).toThrow("clicks/3 is not a partition of the checkpoint nor of the job's source");
    // So is one a batch in flight planned, though none of its batches committed (a first batch that cannot be read).
    const first: BatchRecord = { ...inFlight, id: 1, ranges: [{ topic: 'views', partition: 4, from: 0, until: 70 }] };
    expect(reset({ view: view({ inFlight: first }), requested: { 'views/4': 60 }, discardInFlight: true }).after).toMatchObject({ 'views/4': 60 });
    expect(() => reset({ view: view({ inFlight: first }), requested: { 'views/5': 60 }, discardInFlight: true })).toThrow('views/5 is not a partition of the checkpoint (it knows clicks/0, clicks/1, views/4)');
  });

  it('starts an empty checkpoint at the positions given when the job gave its first meta', () => {
    const d = reset({ view: view({ meta: undefined, positions: {}, lastCommitted: 0 }), firstMeta: meta, requested: { 'clicks/0': 7 }, sourcePartitions: ['clicks/0'] });
    expect(d).toMatchObject({ changed: true, after: { 'clicks/0': 7 }, lastCommitted: 0 });
    expect(d.meta).toEqual({ ...meta, resets: [{ at: 5000, to: 'file o.json', before: {}, after: { 'clicks/0': 7 } }] });
  });

  it('changes nothing when every position stays', () => {
    expect(reset({ requested: { 'clicks/1': 25 } }).changed).toBe(false);
  });

  it('refuses an empty checkpoint', () => {
    const empty = () => reset({ view: view({ meta: undefined }) });
    expect(empty).toThrow(BadConfigError);
    expect(empty).toThrow(`Checkpoint ${DIR} is empty (no batch has run): nothing to reset. To start it at given positions, add --job <job.ts>`);
  });

  it('refuses a batch in flight unless told to drop it; dropping it records its id', () => {
    const refused = () => reset({ view: view({ inFlight }), requested: { 'clicks/0': 90 } });
    expect(refused).toThrow(BadConfigError);
    expect(refused).toThrow('Batch 8 is in flight (staged, ranges clicks/0 [40, 50))');
    expect(refused).toThrow('--discard-in-flight');
    const d = reset({ view: view({ inFlight }), requested: {}, discardInFlight: true });
    expect(d).toMatchObject({ changed: true, discard: [inFlight] });
    expect(d.meta.resets[0]).toMatchObject({ discarded: 8 });
  });

  it('with two batches in flight (pipelined): names both, and dropping drops both, the last id recorded', () => {
    const next: BatchRecord = { ...inFlight, id: 9, state: 'planned', ranges: [{ topic: 'clicks', partition: 0, from: 50, until: 60 }] };
    const both = view({ inFlight, flight: [inFlight, next] });
    expect(() => reset({ view: both, requested: { 'clicks/0': 90 } })).toThrow('Batches 8 and 9 are in flight (8 staged, ranges clicks/0 [40, 50); 9 planned, ranges clicks/0 [50, 60)): a reset under them would be undone when they commit.');
    const d = reset({ view: both, requested: {}, discardInFlight: true });
    expect(d.discard).toEqual([inFlight, next]);
    expect(d.meta.resets[0]).toMatchObject({ discarded: 9 });
  });

  it("uses recovery's identity check: another job's checkpoint, a newer format", () => {
    const other = { name: 'views', sourceId: 'embedded:clicks' };
    // The same check, the same message as at start.
    const expected = new OtherJobError(DIR, 'job name', 'clicks', 'views').message;
    expect(() => reset({ job: other })).toThrow(expected);
    expect(() => decideRecovery({
      dir: DIR, view: view(), job: { ...other, sinks: ['files'], strictCodeVersion: false, onDataLoss: 'fail' },
      fingerprint: 'sha256:a', acceptCodeChange: false, earliest: {}, format: 1, now: 0,
    })).toThrow(expected);
    expect(() => reset({ job: { name: 'clicks', sourceId: 'kafka:clicks' } })).toThrow(OtherJobError);
    expect(() => reset({ view: view({ meta: { ...meta, format: 2 } }) })).toThrow(NewerFormatError);
    expect(reset({ job: { name: 'clicks', sourceId: 'embedded:clicks' }, requested: { 'clicks/0': 1 } }).changed).toBe(true);
  });

  it("refuses positions beyond the source's end when it is known", () => {
    const beyond = () => reset({ requested: { 'clicks/0': 101, 'clicks/1': 100 }, latest: { 'clicks/0': 100, 'clicks/1': 100 } });
    expect(beyond).toThrow(BadConfigError);
    expect(beyond).toThrow(/: clicks\/0 101 is beyond the source's end 100; the next run/); // clicks/1 at the end is fine
    expect(reset({ requested: { 'clicks/0': 100 }, latest: { 'clicks/0': 100 } }).after['clicks/0']).toBe(100);
  });
});
