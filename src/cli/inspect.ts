// `tidemark inspect <dir>`: what a checkpoint holds, for people and (--json) for scripts.
// Read-only: never takes the lock, so it works beside a running daemon.
import { BadConfigError } from '../../checkpoint/errors';
import { openCheckpoint } from '../../checkpoint/store';
import { describeRanges } from '../../recovery/decide';
import { parse } from './main';

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, last: { type: 'string' } });
  const dir = positionals[0];
  if (!dir) throw new BadConfigError('Which checkpoint? Usage: tidemark inspect <dir> [--json].');
  const store = await openCheckpoint(dir, { readOnly: true });
  try {
    const view = await store.load();
    const batches = await store.batches(Number(values.last ?? 10));
    const lost = await store.lostRanges();
    const report = {
      format: view.meta?.format, job: view.meta?.job, source: view.meta?.source, sinks: view.meta?.sinks,
      fingerprint: view.meta?.fingerprint, fingerprints: view.meta?.fingerprints, resets: view.meta?.resets,
      positions: view.positions, lastCommitted: view.lastCommitted, inFlight: view.inFlight ?? null,
      recentBatches: batches.filter((b) => b.state === 'committed'), lost,
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    const lines = [
      `checkpoint ${dir} (format ${report.format})`,
      `job ${report.job} · source ${report.source} · sinks ${report.sinks?.join(', ')}`,
      `fingerprint ${report.fingerprint} (history: ${report.fingerprints?.map((f) => `${f.fingerprint} since ${new Date(f.since).toISOString()} (${f.note})`).join('; ')})`,
      `last committed batch ${report.lastCommitted}`,
      'positions:',
      ...Object.entries(report.positions).map(([p, o]) => `  ${p}\t${o}`),
      `in flight: ${view.inFlight ? `batch ${view.inFlight.id} ${view.inFlight.state}: ${describeRanges(view.inFlight.ranges)}` : 'nothing'}`,
      `lost ranges: ${lost.length === 0 ? 'none' : describeRanges(lost)}`,
      'recent batches:',
      ...report.recentBatches.map((b) => `  ${b.id}\t${b.recordsIn ?? 0} records\t${new Date(b.committedAt ?? 0).toISOString()}\t${describeRanges(b.ranges)}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await store.close();
  }
}
