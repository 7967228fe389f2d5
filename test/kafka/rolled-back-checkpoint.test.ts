// A checkpoint that lost synced writes (here: a copy taken after batch 2, restored after
// batch 5, as a truncated LevelDB log or a restored backup does it) is stopped at start by
// the job's group offsets, which the source committed after every batch with the
// checkpoint's id and the batch id as metadata (recovery/crosscheck.ts): exit 7, naming the
// group offsets, and nothing delivered again. `tidemark reset` to those offsets goes on.
import { cpSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { batchFiles, tidemark, write } from '../support/cli';
import { admin, brokers, closeClients, createTopic, produce, uniqueTopic } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

const quiet = ['--log-level', 'silent', '--progress', 'never'];

/** Every batch file's name, size and modification time: what a re-delivery would change. */
function snapshot(dir: string): string[] {
  const out = join(dir, 'out', 'files');
  return readdirSync(out).sort().map((name) => {
    const st = statSync(join(out, name));
    return `${name} ${st.size} ${st.mtimeMs} ${readFileSync(join(out, name), 'utf8').length}`;
  });
}

describe('a checkpoint rolled back behind its Kafka group offsets', () => {
  const root = tempDir();

  it('stops with exit 7 naming the group offsets, re-delivers nothing; after tidemark reset to them it goes on', async () => {
    const topic = uniqueTopic('rolled-back');
    const groupId = `${topic}-job`;
    await createTopic(topic, 2);
    await produce(topic, Array.from({ length: 80 }, (_, i) => ({ value: `v${i}`, partition: i % 2 })));
    const dir = join(root, 'job');
    const cp = join(dir, 'cp');
    const job = write(join(dir, 'job.ts'), `import { defineJob, fileSink, kafkaSource } from 'tidemark';
export default defineJob({
  name: 'rolled-back',
  source: kafkaSource({ brokers: ${JSON.stringify(brokers())}, topics: [${JSON.stringify(topic)}], groupId: ${JSON.stringify(groupId)} }),
  sinks: [fileSink({ dir: ${JSON.stringify(join(dir, 'out'))} })],
  transform: (records) => records.map((r) => r.partition + ':' + r.offset),
  batch: { maxRecordsPerPartition: 5, maxWaitMs: 0 },
});
`);
    const run = (...args: string[]) => tidemark(['run', job, '--checkpoint', cp, ...quiet, ...args]);

    expect((await run('--max-batches', '2')).code).toBe(0);
    cpSync(cp, join(dir, 'cp-after-2'), { recursive: true });
    expect((await run('--max-batches', '3')).code).toBe(0);
    expect([...batchFiles(dir).keys()]).toEqual([1, 2, 3, 4, 5]);
    // The group offsets are committed in the background after each batch; the process drains them before it exits.
    const group = await (await admin()).fetchOffsets({ groupId, topics: [topic] });
    const groupAt = Object.fromEntries(group[0]!.partitions.map((p) => [`${topic}/${p.partition}`, Number(p.offset)]));
    expect(groupAt).toEqual({ [`${topic}/0`]: 25, [`${topic}/1`]: 25 });

    rmSync(cp, { recursive: true });
    cpSync(join(dir, 'cp-after-2'), cp, { recursive: true });
    const before = snapshot(dir);
    const refused = await run('--once');
    expect(refused.code).toBe(7);
    expect(refused.stderr).toContain('it lost synced writes');
    expect(refused.stderr).toContain(`Kafka group ${groupId} holds the positions of batch 5 of this checkpoint`);
    expect(refused.stderr).toContain(`${topic}/0 25 (checkpoint 10)`);
    expect(refused.stderr).toContain("the checkpoint's last committed batch is 2");
    expect(refused.stderr).toContain(`write ${JSON.stringify(groupAt)} to offsets.json and run tidemark reset ${cp} --to offsets.json --yes`);
    expect(snapshot(dir)).toEqual(before); // nothing delivered again

    const offsets = write(join(dir, 'offsets.json'), JSON.stringify(groupAt));
    expect((await tidemark(['reset', cp, '--to', offsets, '--yes'])).code).toBe(0);
    const resumed = await run('--once');
    expect([resumed.code, resumed.stderr]).toEqual([0, '']);
    // The run went on from the group's offsets: every record once, none of [0, 25) again after the reset.
    const outputs = [...batchFiles(dir).values()].flat() as string[];
    const wanted = [0, 1].flatMap((p) => Array.from({ length: 40 }, (_, i) => `${p}:${i}`));
    expect(new Set(outputs)).toEqual(new Set(wanted));
    const since = snapshot(dir).filter((line) => !before.includes(line)).map((line) => line.split(' ')[0]!);
    const again = since.flatMap((name) => readFileSync(join(dir, 'out', 'files', name), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as string));
    expect(again.every((o) => Number(o.split(':')[1]) >= 25)).toBe(true);
    expect(again.length).toBe(30);
  });
});
