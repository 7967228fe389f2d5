// The short form of the crash torture, on the embedded log: 100 SIGKILLs, half at random
// moments, half at named protocol points, restarts under load, then an exact check.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedProducer, printReport, runTorture, SEAM_POINTS } from './torture';

it('survives 100 SIGKILLs with nothing lost, nothing doubled', async () => {
  const report = await runTorture({ kills: 100, dir: join(tmpdir(), `tidemark-torture-ci-${process.pid}`), producer: (dir) => embeddedProducer(dir) });
  const table = printReport(report, join(tmpdir(), `tidemark-torture-ci-${process.pid}.json`));
  console.log(table);
  expect({ seed: report.seed, lost: report.lost, duplicated: report.duplicated, mixed: report.mixedExecutions, outOfOrder: report.outOfOrder })
    .toEqual({ seed: report.seed, lost: 0, duplicated: 0, mixed: 0, outOfOrder: 0 });
  expect(report.outputsVerified).toBe(report.produced);
  expect(report.produced).toBeGreaterThan(0);
  expect(report.inFlightAfterDrain).toBe(false);
  expect(report.lostRangesInCheckpoint).toBe(0);
  expect(report.restarts).toBe(100);
  // Kills landed in many phases (each seam point is drawn with probability 1/18 per kill).
  expect(Object.keys(report.killsByPhase).filter((p) => p.startsWith('seam:')).length).toBeGreaterThanOrEqual(Math.min(6, SEAM_POINTS.length));
}, 600_000);
