// decideRecovery, by example (the properties are in test/property/).
import { CodeChangedError, DataLossError, NewerFormatError, OtherJobError } from '../../recovery/errors';
import type { BatchRecord, CheckpointMeta, CheckpointView, Range } from '../../checkpoint/model';
import { decideRecovery, type JobIdentity, type RecoveryInput } from '../../recovery/decide';

const DIR = '/var/lib/tidemark/cp';
const job: JobIdentity = { name: 'clicks', sourceId: 'embedded:clicks', sinks: ['files'], strictCodeVersion: false, onDataLoss: 'fail' };
const meta: CheckpointMeta = {
  format: 1, job: 'clicks', source: 'embedded:clicks', sinks: ['files'], fingerprint: 'sha256:old',
  fingerprints: [{ fingerprint: 'sha256:old', since: 100, note: 'first run' }], resets: [], createdAt: 100,
};
const r = (partition: number, from: number, until: number): Range => ({ topic: 'clicks', partition, from, until });
const positions = { 'clicks/0': 40, 'clicks/1': 25 };
const plannedBatch: BatchRecord = { id: 8, state: 'planned', ranges: [r(0, 40, 50), r(1, 25, 25)], fingerprint: 'sha256:old', plannedAt: 1 };
const stagedBatch: BatchRecord = { ...plannedBatch, state: 'staged', stagedChunks: { outputs: 1 }, recordsIn: 10 };

const view = (inFlight?: BatchRecord, over: Partial<CheckpointView> = {}): CheckpointView => ({ meta, positions, lastCommitted: 7, inFlight, flight: inFlight ? [inFlight] : [], ...over });

const decide = (over: Partial<RecoveryInput>) => decideRecovery({
  dir: DIR, view: view(), job, fingerprint: 'sha256:old', acceptCodeChange: false, earliest: {}, format: 1, now: 5000, ...over,
});

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('decideRecovery', () => {
  it("records the checkpoint's id: in a new meta, in an old meta without one (its next run), never replacing one", () => {
    const fresh = decide({ view: { meta: undefined, positions: {}, lastCommitted: 0, inFlight: undefined, flight: [] }, checkpointId: 'id-1' });
    expect(fresh.meta?.checkpointId).toBe('id-1');
    const old = decide({ checkpointId: 'id-2' });
    expect(old.meta).toEqual({ ...meta, checkpointId: 'id-2' });
    expect(old.notes).toEqual([]);
    expect(decide({ view: view(undefined, { meta: { ...meta, checkpointId: 'id-1' } }), checkpointId: 'id-3' }).meta).toBeUndefined();
  });

  it('a fresh checkpoint: new meta with this fingerprint, nothing to resume', () => {
    const d = decide({ view: { meta: undefined, positions: {}, lastCommitted: 0, inFlight: undefined, flight: [] }, fingerprint: 'sha256:new' });
    expect(d.meta).toEqual({
      format: 1, job: 'clicks', source: 'embedded:clicks', sinks: ['files'], fingerprint: 'sha256:new',
      fingerprints: [{ fingerprint: 'sha256:new', since: 5000, note: 'first run' }], resets: [], createdAt: 5000,
    });
    expect(d).toMatchObject({ resumeAt: {}, lastCommitted: 0 });
    expect(d.redeliver).toBeUndefined();
    expect(d.rerun).toBeUndefined();
  });

  it('nothing in flight, same code: resume at the positions, meta unchanged', () => {
    const d = decide({});
    expect(d).toEqual({ meta: undefined, resumeAt: positions, lastCommitted: 7, later: [], notes: [] });
  });

  it('a STAGED batch with outputs is redelivered as staged (no re-read)', () => {
    const d = decide({ view: view(stagedBatch) });
    expect(d.redeliver).toBe(stagedBatch);
    expect(d.rerun).toBeUndefined();
    expect(d.resumeAt).toEqual(positions);
  });

  it('a PLANNED batch is re-run with identical ranges, never re-planned', () => {
    const d = decide({ view: view(plannedBatch), earliest: { 'clicks/0': 0, 'clicks/1': 0 } });
    expect(d.redeliver).toBeUndefined();
    expect(d.rerun).toMatchObject({ id: 8, state: 'planned', ranges: plannedBatch.ranges, lost: [] });
    expect(d.notes.join(' ')).toContain('clicks/0 [40, 50), clicks/1 [25, 25)');
  });

  it('two batches in flight (pipelined): the first is carried on, then the second, each as found; a data loss under the second is cut like the first', () => {
    const second: BatchRecord = { id: 9, state: 'planned', ranges: [r(0, 50, 60), r(1, 25, 30)], fingerprint: 'sha256:old', plannedAt: 2 };
    const d = decide({ view: view(stagedBatch, { flight: [stagedBatch, second] }), earliest: { 'clicks/0': 55, 'clicks/1': 0 }, job: { ...job, onDataLoss: 'skip' } });
    expect(d.redeliver).toBe(stagedBatch);
    expect(d.later).toEqual([{ ...second, ranges: [r(0, 55, 60), r(1, 25, 30)], lost: [r(0, 50, 55)] }]);
    expect(d.notes.join(' ')).toContain('batch 8 was staged');
    expect(d.notes.join(' ')).toContain('batch 9 was planned');
    expect(() => decide({ view: view(stagedBatch, { flight: [stagedBatch, second] }), earliest: { 'clicks/0': 55 } })).toThrow(DataLossError);
    const changed = () => decide({ view: view(stagedBatch, { flight: [stagedBatch, second] }), fingerprint: 'sha256:new' });
    expect(changed).toThrow('Batches 8 and 9 are in flight (8 staged, ranges clicks/0 [40, 50), clicks/1 [25, 25); 9 planned, ranges clicks/0 [50, 60), clicks/1 [25, 30))');
  });

  it('a batch staged without outputs (stageOutputs: false) is re-run from its ranges', () => {
    const { stagedChunks: _omit, ...noOutputs } = stagedBatch;
    const d = decide({ view: view(noOutputs as BatchRecord) });
    expect(d.redeliver).toBeUndefined();
    expect(d.rerun).toMatchObject({ id: 8, state: 'planned', ranges: plannedBatch.ranges });
  });

  it.each([['planned', plannedBatch], ['staged', stagedBatch]] as const)(
    'changed code with a %s batch in flight → CodeChangedError naming both fingerprints, the batch, its ranges and the three ways on',
    (state, batch) => {
      const err = thrown(() => decide({ view: view(batch), fingerprint: 'sha256:new' }));
      expect(err).toBeInstanceOf(CodeChangedError);
      expect(err).toMatchObject({ code: 'TIDEMARK_CODE_CHANGED', exitCode: 4 });
      const m = err.message;
      expect(m).toContain('written by sha256:old, this code is sha256:new');
      expect(m).toContain(`Batch 8 is in flight (${state}, ranges clicks/0 [40, 50), clicks/1 [25, 25))`);
      expect(m).toMatch(/1\. finish it with the old code: .*SIGTERM/);
      expect(m).toMatch(/2\. accept the change: start with --accept-code-change/);
      expect(m).toContain(`3. reset the positions: tidemark reset ${DIR} --discard-in-flight`);
    },
  );

  it('changed sinks with a batch in flight are refused the same way', () => {
    const err = thrown(() => decide({ view: view(stagedBatch), job: { ...job, sinks: ['files', 'db'] } }));
    expect(err).toBeInstanceOf(CodeChangedError);
    expect(err.message).toContain("The job's sinks changed: the checkpoint has files, this job has files, db.");
  });

  it('--accept-code-change: staged outputs delivered as staged, planned ranges recomputed; the fingerprint history records it', () => {
    const staged = decide({ view: view(stagedBatch), fingerprint: 'sha256:new', acceptCodeChange: true });
    expect(staged.redeliver).toBe(stagedBatch);
    expect(staged.meta?.fingerprint).toBe('sha256:new');
    expect(staged.meta?.fingerprints).toEqual([...meta.fingerprints, { fingerprint: 'sha256:new', since: 5000, note: 'accepted with --accept-code-change' }]);
    const planned = decide({ view: view(plannedBatch), fingerprint: 'sha256:new', acceptCodeChange: true });
    expect(planned.rerun?.ranges).toEqual(plannedBatch.ranges);
  });

  it('changed code with nothing in flight continues and records the new fingerprint', () => {
    const d = decide({ fingerprint: 'sha256:new' });
    expect(d.resumeAt).toEqual(positions);
    expect(d.meta).toEqual({ ...meta, fingerprint: 'sha256:new', fingerprints: [...meta.fingerprints, { fingerprint: 'sha256:new', since: 5000, note: 'code change, nothing in flight' }] });
    expect(d.notes[0]).toContain('Continuing: code change, nothing in flight');
  });

  it('strictCodeVersion refuses changed code even with nothing in flight, unless accepted', () => {
    const err = thrown(() => decide({ fingerprint: 'sha256:new', job: { ...job, strictCodeVersion: true } }));
    expect(err).toBeInstanceOf(CodeChangedError);
    expect(err.message).toContain('strictCodeVersion');
    expect(err.message).toContain('sha256:old');
    // The message offers --accept-code-change as a way on: it must work (regression: it was refused too).
    expect(err.message).toContain('--accept-code-change');
    const accepted = decide({ fingerprint: 'sha256:new', job: { ...job, strictCodeVersion: true }, acceptCodeChange: true });
    expect(accepted.resumeAt).toEqual(positions);
    expect(accepted.meta?.fingerprints.at(-1)).toEqual({ fingerprint: 'sha256:new', since: 5000, note: 'accepted with --accept-code-change' });
    // The same code is always fine.
    expect(decide({ job: { ...job, strictCodeVersion: true } }).meta).toBeUndefined();
  });

  it('a checkpoint in a newer format is refused, whatever else', () => {
    const err = thrown(() => decide({ view: view(undefined, { meta: { ...meta, format: 2 } }), acceptCodeChange: true }));
    expect(err).toBeInstanceOf(NewerFormatError);
    expect(err).toMatchObject({ exitCode: 4 });
    expect(err.message).toContain('format 2; this build of tidemark understands format 1');
  });

  it('a checkpoint of another job or another source is refused', () => {
    const other = thrown(() => decide({ job: { ...job, name: 'orders' } }));
    expect(other).toBeInstanceOf(OtherJobError);
    expect(other.message).toContain('its job name is clicks, this job\'s is orders');
    const src = thrown(() => decide({ job: { ...job, sourceId: 'kafka:clicks' } }));
    expect(src).toBeInstanceOf(OtherJobError);
    expect(src.message).toContain('its source is embedded:clicks, this job\'s is kafka:clicks');
  });

  it('a planned batch whose start was deleted from the source: DataLossError under fail', () => {
    const err = thrown(() => decide({ view: view(plannedBatch), earliest: { 'clicks/0': 45, 'clicks/1': 0 } }));
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as DataLossError).lost).toEqual([r(0, 40, 45)]);
  });

  it('... and under skip: re-run from earliest, the cut recorded as lost; a fully deleted range becomes empty', () => {
    const d = decide({ view: view(plannedBatch), earliest: { 'clicks/0': 45, 'clicks/1': 0 }, job: { ...job, onDataLoss: 'skip' } });
    expect(d.rerun?.ranges).toEqual([r(0, 45, 50), r(1, 25, 25)]);
    expect(d.rerun?.lost).toEqual([r(0, 40, 45)]);
    const all = decide({ view: view(plannedBatch), earliest: { 'clicks/0': 70, 'clicks/1': 30 }, job: { ...job, onDataLoss: 'skip' } });
    expect(all.rerun?.ranges).toEqual([r(0, 50, 50), r(1, 25, 25)]);
    expect(all.rerun?.lost).toEqual([r(0, 40, 50)]);
  });

  it('a staged batch is redelivered even if the source has since deleted its offsets (no re-read)', () => {
    const d = decide({ view: view(stagedBatch), earliest: { 'clicks/0': 1000 } });
    expect(d.redeliver).toBe(stagedBatch);
  });
});
