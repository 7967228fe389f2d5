// The consumer group of a group-mode job deleted while its daemons are stopped (as Kafka's
// offsets.retention.minutes does to an empty group after 7 days): the restarted daemon stops
// with exit 11, naming the partitions and how far the sinks hold them, and writes nothing.
// The way on its message gives — Kafka's own tool commits the sinks' ends to the group, and
// `groupEpochBase` lifts the new group's epochs over the ledgers' — continues exactly.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRangeFiles, groupPostgres, rangeFiles, startDaemon, until, type GroupRun } from '../support/group';
import { bootstrap, closeClients, createTopic, kafkaTool, produceRecords, uniqueTopic } from '../support/kafka';
import { killAll } from '../support/processes';

afterEach(killAll);
afterAll(closeClients);

it('a deleted group: exit 11 with the sinks\' ends and nothing written; restored as the message says, exactly once', async () => {
  const topic = uniqueTopic('glost');
  await createTopic(topic, 2);
  const pg = await groupPostgres();
  const group = `tidemark-group-${topic}`;
  const run: GroupRun = { dir: mkdtempSync(join(tmpdir(), 'tidemark-glost-')), topic, brokers: bootstrap(), env: pg.env };
  const produced = new Map<number, string[]>();
  await produceRecords(topic, 2, 400, produced, 'a');
  const first = startDaemon(run, 0);
  await until(() => checkRangeFiles(run.dir, produced).found === 400, 90_000, 'every output in the sink', { first });
  first.proc.kill('SIGTERM');
  expect((await first.exited).code).toBe(0);

  await kafkaTool('consumer-groups', ['--bootstrap-server', bootstrap(), '--delete', '--group', group]);
  await produceRecords(topic, 2, 100, produced, 'b');
  const lost = startDaemon(run, 0);
  expect((await lost.exited).code).toBe(11);
  const ends = new Map([...rangeFiles(run.dir)].map(([p, files]) => [p, Math.max(...files.map((f) => f.until))]));
  expect(lost.stderr()).toMatch(new RegExp(`^tidemark: the consumer group ${group} has no committed offset for ${topic}/\\d, ${topic}/\\d, but the sinks hold their output: `));
  for (const [p, end] of ends) expect(lost.stderr()).toContain(`${topic}/${p} delivered up to ${end}`);
  expect(lost.stderr()).toMatch(/set the job's `groupEpochBase` to 1 or more/);
  expect(checkRangeFiles(run.dir, produced)).toMatchObject({ found: 400, duplicated: 0 });

  // The way on: the sinks' ends committed to the group with Kafka's tool, and the epoch base.
  for (const [p, end] of ends) {
    await kafkaTool('consumer-groups', ['--bootstrap-server', bootstrap(), '--group', group, '--reset-offsets', '--topic', `${topic}:${p}`, '--to-offset', String(end), '--execute']);
  }
  const again = startDaemon({ ...run, env: { ...pg.env, GROUP_EPOCH_BASE: '1' } }, 0);
  await until(() => checkRangeFiles(run.dir, produced).found === 500, 90_000, 'the outputs after the restore', { again });
  again.proc.kill('SIGTERM');
  expect((await again.exited).code).toBe(0);
  expect(checkRangeFiles(run.dir, produced)).toEqual({ expected: 500, found: 500, lost: 0, duplicated: 0, discontinuities: [] });
  expect(await pg.check(produced)).toEqual({ found: 500, lost: 0, duplicated: 0 });
  await pg.close();
}, 240_000);
