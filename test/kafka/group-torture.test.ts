// Group mode's torture against the shared broker (test/crash/group-torture.ts): 3 daemons,
// 50 SIGKILLs of random daemons (each restarted), a 4th daemon joining, one leaving with
// SIGTERM, 2 partitions added, a zombie frozen past its session and resumed; afterwards the
// sink holds every produced record's output exactly once. `npm run torture -- --daemons 3
// --kills N` is the long form.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { printGroupReport, runGroupTorture } from '../crash/group-torture';
import { bootstrap } from '../support/kafka';
import { killAll } from '../support/processes';

afterAll(killAll);

it('3 daemons survive 50 SIGKILLs, a join, a SIGTERM, added partitions and a zombie: every output exactly once', async () => {
  const dir = join(tmpdir(), `tidemark-group-torture-ci-${process.pid}`);
  const report = await runGroupTorture({ kills: 53, daemons: 3, dir, brokers: bootstrap(), killEveryMs: [800, 2_000] });
  console.log(printGroupReport(report, `${dir}.json`));
  expect(report.kills).toBeGreaterThanOrEqual(50);
  expect(report.produced).toBeGreaterThan(0);
  for (const [name, s] of Object.entries(report.sinks)) expect({ name, ...s }).toEqual({ name, ...s, found: report.produced, lost: 0, duplicated: 0, ...(s.discontinuities !== undefined ? { discontinuities: 0 } : {}) });
  expect(report.exitCodes.every((c) => c === 0)).toBe(true);
  expect(report.zombie.handoffsAfterResume).toBe(0);
}, 360_000);
