// Group mode keeps each partition's progress in the consumer group. When the group loses it
// (deleted, or its offsets expired while every daemon was stopped) the sinks still hold the
// output, and the new group's generations start again below the ledgers' epochs: the engine
// stops with GroupStateLostError, naming the partitions, how far the sinks hold them and the
// `groupEpochBase` to set, and writes nothing. Restored (offsets committed at the sinks' ends,
// groupEpochBase set) the job goes on exactly where it was.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, fileSink, GroupEngine, GroupStateLostError, type LostPartition } from 'tidemark';
import { silentLogger } from '../../src/log';
import { GroupLog } from '../support/group-log';
import type { MemoryLog } from '../support/memory-source';
import { tempDir } from '../support/tmp';

const root = tempDir('tidemark-group-state-lost-');

function run(source: GroupLog, name: string, groupEpochBase?: number) {
  const job = defineJob({
    name: 'lost', source: source as unknown as MemoryLog, scaleOut: 'group', ...(groupEpochBase === undefined ? {} : { groupEpochBase }),
    sinks: [fileSink<string>({ dir: join(root, 'out'), name: 'files' })],
    batch: { maxRecordsPerPartition: 4, minRecords: 1, maxWaitMs: 0 },
    transform: (records) => records.map((r) => r.value!.toString()),
  });
  return new GroupEngine(job, { checkpointDir: join(root, name), logger: silentLogger }).run({ once: true });
}

const files = (): string[] => readdirSync(join(root, 'out', 'files')).filter((f) => f.startsWith('part-')).sort();

it('stops with the partitions, the sinks\' ends and the epoch base to set; restored, goes on exactly', async () => {
  const source = new GroupLog(1, 5, [0]);
  source.append(0, 8);
  await run(source, 'cp');
  expect(files()).toEqual(['part-t-0-0-4.jsonl', 'part-t-0-4-8.jsonl']);

  // The group is gone: no offsets, generations from 1 again (epoch 1 < the ledger's 5).
  source.commits.clear();
  source.assign(1, [0]);
  source.append(0, 4);
  const lost = run(source, 'cp');
  await expect(lost).rejects.toThrow(GroupStateLostError);
  await expect(lost).rejects.toMatchObject({ code: 'TIDEMARK_GROUP_STATE_LOST', exitCode: 11 });
  await expect(lost).rejects.toThrow(/^the consumer group g has no committed offset for t\/0, but the sinks hold their output: t\/0 delivered up to 8 \(sinks files\)/);
  await expect(lost).rejects.toThrow(/--group g --reset-offsets --topic t:0 --to-offset 8 --execute`.*set the job's `groupEpochBase` to 5 or more/);
  expect(files()).toHaveLength(2); // nothing written

  // The epoch base alone does not do: the claims are taken, but the offsets are still missing.
  await expect(run(source, 'cp', 5)).rejects.toThrow(GroupStateLostError);

  // Both restored: the job goes on at 8, as the owner of epoch 1 + 5.
  source.commits.set('t/0', { offset: 8, metadata: null });
  const summary = await run(source, 'cp', 5);
  expect(summary.positions).toEqual({ 't/0': 12 });
  expect(files()).toEqual(['part-t-0-0-4.jsonl', 'part-t-0-4-8.jsonl', 'part-t-0-8-12.jsonl']);
  expect(readdirSync(join(root, 'out', 'files', '.tidemark-claims', 't-0'))).toEqual(['epoch-6']);
});

it('a new group over sinks that hold nothing of the partition starts as usual', async () => {
  const source = new GroupLog(1, 1, [0]);
  source.append(0, 3);
  const job = defineJob({
    name: 'fresh', source: source as unknown as MemoryLog, scaleOut: 'group', sinks: [fileSink<string>({ dir: join(root, 'fresh'), name: 'files' })],
    batch: { maxRecordsPerPartition: 4, minRecords: 1, maxWaitMs: 0 }, transform: (records) => records.map((r) => r.value!.toString()),
  });
  const summary = await new GroupEngine(job, { checkpointDir: join(root, 'fresh-cp'), logger: silentLogger }).run({ once: true });
  expect(summary.positions).toEqual({ 't/0': 3 });
});

it('names each sink\'s end when they disagree (a batch delivered to some sinks only): that partition cannot go on exactly', () => {
  const lost: LostPartition[] = [
    { partition: 't/0', ledgers: [{ sink: 'pg', until: 100, epoch: 7 }, { sink: 'files', until: 80, epoch: 7 }] },
    { partition: 't/1', ledgers: [{ sink: 'pg', until: 50, epoch: 9 }] },
  ];
  const err = new GroupStateLostError('g', lost, 0);
  expect(err.message).toContain('t/0 delivered up to 100 (pg), 80 (files); t/1 delivered up to 50');
  expect(err.message).toContain('The sinks disagree on t/0: a batch was delivered to some of them');
  expect(err.message).toContain('set the job\'s `groupEpochBase` to 9 or more (the ledgers\' newest epoch is 9');
});
