// Group mode with real daemons on the shared broker: partitions spread over the daemons of
// the job's consumer group, each with its own checkpoint, and every produced record's
// output lands exactly once.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkOutputs, checkRangeFiles, events, groupPostgres, startDaemon, until, type GroupRun } from '../support/group';
import { bootstrap, brokers, closeClients, createTopic, produceRecords, readTopic, uniqueTopic } from '../support/kafka';
import { killAll, runTidemark } from '../support/processes';

afterEach(killAll);
afterAll(closeClients);

it('two daemons share a topic\'s partitions and deliver every record once to the file, PostgreSQL and Kafka sinks; SIGTERM leaves the group and exits 0', async () => {
  const topic = uniqueTopic('group2');
  const sinkTopic = uniqueTopic('group2-out');
  await createTopic(topic, 4);
  await createTopic(sinkTopic, 2);
  const pg = await groupPostgres();
  const run: GroupRun = { dir: mkdtempSync(join(tmpdir(), 'tidemark-group2-')), topic, brokers: bootstrap(), env: { GROUP_KAFKA_SINK_TOPIC: sinkTopic, ...pg.env } };
  const produced = new Map<number, string[]>();
  await produceRecords(topic, 4, 2000, produced, 'a');
  const a = startDaemon(run, 0);
  const b = startDaemon(run, 1);
  // Once b has partitions, records for every partition make each daemon commit one (records
  // produced before b joined could all be a's: then b had nothing to commit).
  await until(() => events(b, 'assigned').length > 0, 60_000, 'b to be assigned partitions', { a, b });
  await produceRecords(topic, 4, 2000, produced, 'b');
  await until(() => checkRangeFiles(run.dir, produced).found === 4000, 90_000, 'every output in the sink', { a, b });

  // Both took part: the group split the partitions between them.
  const owners = (c: typeof a): Set<string> => new Set(events(c, 'handoff').map((e) => String(e.partition)));
  await until(() => owners(a).size > 0 && owners(b).size > 0, 30_000, 'both daemons to commit a partition', { a, b });

  b.proc.kill('SIGTERM');
  expect((await b.exited).code).toBe(0);
  // inspect shows what b owned at its last assignment, with the epochs.
  const inspected = await runTidemark(['inspect', join(run.dir, 'cp-1'), '--json']);
  const ownership = (JSON.parse(inspected.stdout) as { ownership: { generation: number; partitions: Record<string, number> } }).ownership;
  expect(Object.keys(ownership.partitions).length).toBeGreaterThan(0);
  expect(Object.values(ownership.partitions).every((e) => e >= 1 && e <= ownership.generation)).toBe(true);
  await produceRecords(topic, 4, 1000, produced, 'c');
  // b's partitions move to a at once (LeaveGroup), and a finishes them.
  await until(() => checkRangeFiles(run.dir, produced).found === 5000, 90_000, 'the outputs after b left', { a, b });
  a.proc.kill('SIGTERM');
  expect((await a.exited).code).toBe(0);

  const check = checkRangeFiles(run.dir, produced);
  expect(check).toEqual({ expected: 5000, found: 5000, lost: 0, duplicated: 0, discontinuities: [] });
  expect(owners(a).size).toBe(4);
  const delivered = (await readTopic(brokers(), sinkTopic)).map((r) => JSON.parse(r.value ?? '{}') as { p: number; v: string });
  expect(checkOutputs(delivered, produced)).toEqual({ found: 5000, lost: 0, duplicated: 0 });
  expect(await pg.check(produced)).toEqual({ found: 5000, lost: 0, duplicated: 0 });
  await pg.close();
}, 180_000);
