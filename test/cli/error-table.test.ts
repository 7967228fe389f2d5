// One table of expected failures (ERRORS in checkpoint/errors.ts): every error class takes
// its exit code from it, `tidemark --help` prints it, and the exit-code tables of README.md
// and docs/cli.md must say the same.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as api from 'tidemark';
import { ERRORS, exitCodeRows, TidemarkError, type ErrorCode } from '../../checkpoint/errors';
import { ROOT, tidemark } from '../support/cli';

/** The rows `| exit code | error code | meaning |` of the table under `heading` in a Markdown file. */
function docTable(file: string, heading: string): Array<{ exitCode: number; code: string | null; meaning: string }> {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const start = text.indexOf(heading);
  expect(start).toBeGreaterThanOrEqual(0);
  const lines = text.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('| exit code | error code | meaning |'));
  expect(first).toBeGreaterThanOrEqual(0);
  const rows = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    const [exit, code, meaning] = line.split(' | ').map((c) => c.replace(/^\|\s*|\s*\|$/g, '').replace(/`/g, '').trim());
    rows.push({ exitCode: Number(exit), code: code === '' ? null : code!, meaning: meaning! });
  }
  return rows;
}

const boom = new Error('boom');
/** One of each error class, as its raiser builds it. */
const instances: TidemarkError[] = [
  new api.BadConfigError('x'), new api.CheckpointLockedError('cp', 'pid 1'), new api.LockCompromisedError('cp', 'gone'),
  new api.CorruptCheckpointError('cp', 'x'), new api.CheckpointWriteError('cp', boom),
  new api.CodeChangedError('x'), new api.NewerFormatError('cp', 2, 1), new api.OtherJobError('cp', 'job name', 'a', 'b'), new api.DataLossError([]),
  new api.SourceWentBackwardsError('t', 0, 5, 1), new api.SourceUnreachableError('x'), new api.TransformError(1, 't/0@1', boom),
  new api.SinkError('s', 1, boom), new api.SinkRejectedError('s', 1, [{ index: 0, output: 1, reason: 'r' }]),
  new api.SinkLedgerMismatchError('s', 1, 'x'), new api.SinkFencedError('s', 1, 'x'), new api.PartitionFencedError('s', 't', 0, 1, 2), new api.GroupStateLostError('g', [{ partition: 't/0', ledgers: [{ sink: 's', until: 5, epoch: 3 }] }], 0), new api.InvariantError('cp', 'x'), new api.LogWriteError('log', boom, []),
  new api.AuthenticationError('Kafka b:9093', 'x'), new api.TlsError('Kafka b:9093', 'x'), new api.NotAuthorizedError('Kafka b:9093', 'reading t', 'x'),
  new api.SourceCorruptError('t', 0, '5', 1, 2),
];

describe('the error table', () => {
  it('every error class is exported from the package root and takes its exit code from ERRORS; every code has a class', () => {
    const exported = Object.values(api).filter((v) => typeof v === 'function' && v.prototype instanceof TidemarkError);
    expect(new Set(instances.map((e) => e.constructor))).toEqual(new Set(exported));
    for (const e of instances) expect({ code: e.code, exitCode: e.exitCode }).toEqual({ code: e.code, exitCode: ERRORS[e.code].exitCode });
    expect(new Set(instances.map((e) => e.code))).toEqual(new Set(Object.keys(ERRORS) as ErrorCode[]));
  });

  it.each([
    ['README.md', '**Exit codes.**'],
    ['docs/cli.md', '## Exit codes'],
  ])('the exit-code table of %s lists exactly ERRORS, in order, each meaning starting with its summary', (file, heading) => {
    const rows = docTable(file, heading);
    expect(rows.map((r) => [r.exitCode, r.code])).toEqual(exitCodeRows().map((r) => [r.exitCode, r.code]));
    rows.forEach((r, i) => expect(r.meaning.startsWith(exitCodeRows()[i]!.summary) ? r.meaning : `${r.meaning} ≠ ${exitCodeRows()[i]!.summary}`).toBe(r.meaning));
  });

  it('tidemark --help prints every row', async () => {
    const r = await tidemark(['--help']);
    expect(r.code).toBe(0);
    const list = r.stdout.slice(r.stdout.indexOf('Exit codes'));
    for (const row of exitCodeRows()) expect(list).toMatch(new RegExp(`\\n  ${row.exitCode} +${row.code ?? ''} *${row.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`));
  });

  it('the engine without a checkpoint directory is bad configuration (exit 2), not an unexpected error', async () => {
    const job = api.defineJob({ name: 'no-dir', source: api.generatorSource({ partitions: 1, size: 1 }), sinks: [api.memorySink('m')], transform: (records) => records });
    await expect(new api.Engine(job, {}).run({ once: true })).rejects.toMatchObject({ code: 'TIDEMARK_BAD_CONFIG', exitCode: 2, message: expect.stringContaining('No checkpoint directory') });
  });
});
