// A damaged checkpoint is reported, never silently replaced: the daemon exits with the
// corrupt-checkpoint code (7) and a message naming the damage, and writes nothing. (LevelDB
// itself may reorganize its files when it opens a database — it turns its log into a table —
// so the check is that once the damaged files are restored, the checkpoint holds exactly
// what it held before: nothing was lost or overwritten.)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { coverageEnv } from '../support/coverage-env';

const root = join(__dirname, '..', '..');
const base = mkdtempSync(join(tmpdir(), 'tidemark-corrupt-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const job = join(base, 'job.ts');
writeFileSync(job, `
import { defineJob, generatorSource, fileSink } from 'tidemark';
export default defineJob({
  name: 'corrupt', source: generatorSource({ partitions: 2, size: 5000 }),
  sinks: [fileSink({ dir: process.env.CORRUPT_OUT! })],
  transform: (records) => records.map((r) => r.offset), batch: { maxRecordsPerPartition: 500 },
});
`);

/** Each checkpoint's file sink writes its own directory: a sink directory belongs to one checkpoint. */
const outOf = (checkpoint: string): string => join(base, 'out', basename(checkpoint));

function run(checkpoint: string, ...args: string[]) {
  return spawnSync(process.execPath, [join(root, 'bin', 'tidemark.js'), 'run', job, '--checkpoint', checkpoint, ...args],
    { cwd: root, encoding: 'utf8', timeout: 60_000, env: coverageEnv({ ...process.env, CORRUPT_OUT: outOf(checkpoint) }) });
}

/** What the checkpoint holds, as `tidemark inspect --json` reports it. */
function contents(dir: string): unknown {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'tidemark.js'), 'inspect', dir, '--json'], { cwd: root, env: coverageEnv(), encoding: 'utf8' });
  expect(r.status).toBe(0);
  const { positions, lastCommitted, inFlight, recentBatches, fingerprints } = JSON.parse(r.stdout) as Record<string, unknown>;
  return { positions, lastCommitted, inFlight, recentBatches, fingerprints };
}

/** A checkpoint with some batches committed, reopened twice so its data sits in table files. */
function checkpointWithTables(name: string): string {
  const dir = join(base, name);
  for (const n of ['2', '2', '2']) expect(run(dir, '--max-batches', n).status).toBe(0);
  expect(readdirSync(join(dir, 'db')).some((f) => f.endsWith('.ldb'))).toBe(true);
  return dir;
}

/** Each damage names the files it touches, so the test can restore them afterwards. */
const damages: Array<[string, (db: string) => string[], (db: string, file: string) => void]> = [
  ['the CURRENT file is gone (a truncated copy)', () => ['CURRENT'], (db, f) => rmSync(join(db, f))],
  ['the MANIFEST is garbage', (db) => readdirSync(db).filter((f) => f.startsWith('MANIFEST-')),
    (db, f) => writeFileSync(join(db, f), Buffer.alloc(statSync(join(db, f)).size, 0x5a))],
  ['every table file is zeroed', (db) => readdirSync(db).filter((f) => f.endsWith('.ldb')),
    (db, f) => writeFileSync(join(db, f), Buffer.alloc(statSync(join(db, f)).size))],
];

describe.each(damages)('a checkpoint where %s', (what, files, damage) => {
  it('is refused with exit code 7, a clear message, and nothing overwritten', () => {
    const dir = checkpointWithTables(`cp-${damages.findIndex(([d]) => d === what)}`);
    const db = join(dir, 'db');
    const before = contents(dir);
    const originals = new Map(files(db).map((f) => [f, readFileSync(join(db, f))]));
    expect(originals.size).toBeGreaterThan(0);
    for (const f of originals.keys()) damage(db, f);

    const r = run(dir);
    expect(r.stderr).toMatch(/^tidemark: Checkpoint .* is damaged \(.+\)\. Nothing was written\. Look at it with `tidemark inspect/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.status).toBe(7);
    expect(readdirSync(join(outOf(dir), 'files')).length).toBeGreaterThan(0);

    for (const [f, bytes] of originals) writeFileSync(join(db, f), bytes);
    expect(contents(dir)).toEqual(before);
  });
});

it('a checkpoint whose only write log is zeroed is refused, not started afresh', () => {
  const dir = join(base, 'cp-log');
  expect(run(dir, '--max-batches', '1').status).toBe(0);
  const db = join(dir, 'db');
  const logs = readdirSync(db).filter((f) => f.endsWith('.log'));
  expect(readdirSync(db).filter((f) => f.endsWith('.ldb'))).toEqual([]); // the records live only in the log
  for (const f of logs) writeFileSync(join(db, f), Buffer.alloc(statSync(join(db, f)).size));
  const r = run(dir);
  expect(r.stderr).toMatch(/is damaged \(checkpoint\.json says a checkpoint was written here, but LevelDB holds no records/);
  expect(r.status).toBe(7);
});

it('a synced STAGE that LevelDB drops from its damaged write log stops every run with exit 7, instead of coming back as PLANNED', () => {
  const dir = join(base, 'cp-stage-log');
  const out = join(base, 'out-stage-log');
  const runStage = (env: Record<string, string> = {}) => spawnSync(process.execPath, [join(root, 'bin', 'tidemark.js'), 'run', job, '--checkpoint', dir],
    { cwd: root, encoding: 'utf8', timeout: 60_000, env: coverageEnv({ ...process.env, CORRUPT_OUT: out, ...env }) });
  expect(runStage({ TIDEMARK_CRASH_AT: 'staged' }).signal).toBe('SIGKILL');
  const db = join(dir, 'db');
  const [log] = readdirSync(db).filter((f) => f.endsWith('.log'));
  const bytes = readFileSync(join(db, log!));
  bytes[bytes.length - 100]! ^= 0x04; // one bit inside the STAGE, the last write before the kill
  writeFileSync(join(db, log!), bytes);

  for (let attempt = 0; attempt < 2; attempt++) {
    const r = runStage();
    expect(r.stderr).toMatch(/is damaged \(LevelDB reported damage while opening it.*Corruption: checksum mismatch/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.status).toBe(7);
  }
  const delivered = existsSync(out) ? readdirSync(out, { recursive: true }).filter((f) => String(f).endsWith('.jsonl')) : [];
  expect(delivered).toEqual([]); // the batch was not run again
  const kept = readdirSync(dir).filter((f) => f.startsWith('db.damaged-'));
  expect(readFileSync(join(dir, kept[0]!, log!))).toEqual(bytes);
});
