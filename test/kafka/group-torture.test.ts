// Group mode's torture against the shared broker (test/crash/group-torture.ts): 3 daemons,
// 50 SIGKILLs of random daemons (each restarted), a 4th daemon joining, one leaving with
// SIGTERM, 2 partitions added, a zombie frozen past its session and resumed; afterwards the
// file, PostgreSQL and Kafka (read_committed) sinks hold every produced record's output
// exactly once. `npm run torture -- --daemons 3 --kills N` is the long form.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { printGroupReport, runGroupTorture } from '../crash/group-torture';
import { checkOutputs, groupPostgres } from '../support/group';
import { bootstrap, brokers, closeClients, createTopic, readTopic, uniqueTopic } from '../support/kafka';
import { killAll } from '../support/processes';

afterAll(async () => {
  killAll();
  await closeClients();
});

it('3 daemons survive 50 SIGKILLs, a join, a SIGTERM, added partitions and a zombie: every output exactly once in every sink', async () => {
  const dir = join(tmpdir(), `tidemark-group-torture-ci-${process.pid}`);
  const sinkTopic = uniqueTopic('group-torture-out');
  await createTopic(sinkTopic, 3);
  const pg = await groupPostgres();
  const report = await runGroupTorture({
    kills: 53, daemons: 3, dir, brokers: bootstrap(), killEveryMs: [800, 2_000], deadlineMs: 320_000, env: { GROUP_KAFKA_SINK_TOPIC: sinkTopic, ...pg.env },
    sinkChecks: [{ name: 'postgres', check: (produced) => pg.check(produced) }, {
      name: 'kafka',
      check: async (produced) => checkOutputs((await readTopic(brokers(), sinkTopic)).map((r) => JSON.parse(r.value ?? '{}') as { p: number; v: string }), produced),
    }],
  });
  await pg.close();
  console.log(printGroupReport(report, `${dir}.json`));
  expect(report.kills).toBeGreaterThanOrEqual(50);
  expect(report.produced).toBeGreaterThan(0);
  expect(Object.keys(report.sinks).sort()).toEqual(['files', 'kafka', 'postgres']);
  for (const [name, s] of Object.entries(report.sinks)) {
    expect({ name, ...s }).toEqual({ name, ...s, found: report.produced, lost: 0, duplicated: 0, ...(s.discontinuities !== undefined ? { discontinuities: 0 } : {}) });
  }
  expect(report.exitCodes.every((c) => c === 0)).toBe(true);
  // The zombie, resumed after its partitions moved, got nothing accepted at its old epoch.
  expect(report.zombie.staleCommits).toBe(0);
}, 360_000);
