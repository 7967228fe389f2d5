// The crash torture against the real broker: SIGKILLs at random moments and at named
// protocol points while a producer writes, then an exact check. Fewer kills than on the
// embedded log (test/crash/torture-embedded.test.ts, 100 kills): each restart after a
// SIGKILL waits for the killed consumer's group session to expire (6 s), see
// docs/kafka-source.md. `npm run torture -- --source kafka --kills 1000` is the long form.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { printReport, runTorture } from '../crash/torture';
import { kafkaProducerFactory } from '../crash/torture-kafka';

it('survives 30 SIGKILLs against Kafka with nothing lost, nothing doubled', async () => {
  const report = await runTorture({ kills: 30, dir: join(tmpdir(), `tidemark-torture-kafka-ci-${process.pid}`), producer: kafkaProducerFactory() });
  console.log(printReport(report, join(tmpdir(), `tidemark-torture-kafka-ci-${process.pid}.json`)));
  expect({ seed: report.seed, lost: report.lost, duplicated: report.duplicated, mixed: report.mixedExecutions, outOfOrder: report.outOfOrder })
    .toEqual({ seed: report.seed, lost: 0, duplicated: 0, mixed: 0, outOfOrder: 0 });
  expect(report.produced).toBeGreaterThan(0);
  expect(report.outputsVerified).toBe(report.produced);
  expect(report.inFlightAfterDrain).toBe(false);
  expect(report.lostRangesInCheckpoint).toBe(0);
}, 900_000);
