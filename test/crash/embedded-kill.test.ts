// The main example job, killed for real: `tidemark run examples/clickstream/job.ts` on a
// seeded embedded log, SIGKILLed at random moments and at named protocol points (the
// crash seam), restarted each time, then drained with --once. The sink must then hold
// exactly one file per committed batch, each the count of exactly its ranges, and the
// per-page totals must equal the counts of the seeded data.
//
// Replay a failure with TIDEMARK_TEST_SEED=<the printed seed>.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedLog, type AppendRecord } from 'tidemark';
import { openCheckpoint } from '../../checkpoint/store';
import { killAll, runTidemark, tidemark } from '../support/processes';
import { tempDir } from '../support/tmp';
import { prng } from '../support/prng';

const JOB = 'examples/clickstream/job.ts';
const SEED_RECORDS = 200_000;
const PAGES = ['/home', '/search', '/product', '/cart', '/checkout', '/help', '/about', '/blog'];

afterAll(killAll);
const data = tempDir('tidemark-clickstream-');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function add(totals: Map<string, number>, page: string, n = 1): void {
  totals.set(page, (totals.get(page) ?? 0) + n);
}

/** The job's seed formula (examples/clickstream/job.ts), recomputed. */
function seededTotals(): Map<string, number> {
  const totals = new Map<string, number>();
  for (let i = 0; i < SEED_RECORDS; i++) add(totals, PAGES[(i * 31 + (i >> 3)) % PAGES.length]!);
  return totals;
}

/** The job's transform, restated: clicks per page, sorted by page. */
function countPages(values: string[]): Array<{ page: string; clicks: number }> {
  const counts = new Map<string, number>();
  for (const v of values) add(counts, (JSON.parse(v) as { page: string }).page);
  return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([page, clicks]) => ({ page, clicks }));
}

it('survives SIGKILLs at random moments and at protocol points: every batch file once, totals exact', async () => {
  const seed = Number(process.env.TIDEMARK_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = prng(seed);
  const env = { CLICKSTREAM_DATA: data, CLICKSTREAM_SEED: String(SEED_RECORDS), TIDEMARK_LOG_LEVEL: 'info' };
  const logDir = join(data, 'log');
  const checkpoint = join(data, 'checkpoint');
  const sinkDir = join(data, 'out', 'page-counts');
  const expected = seededTotals();
  let appended = 0;
  const history: string[] = [];

  /** More clicks while the job is down, so every restart has work to do. */
  const appendClicks = async (count: number): Promise<void> => {
    const log = await EmbeddedLog.open(logDir);
    const records: AppendRecord[] = [];
    for (let i = 0; i < count; i++) {
      const user = `x${Math.floor(rand() * 3000)}`;
      const page = PAGES[Math.floor(rand() * PAGES.length)]!;
      add(expected, page);
      records.push({ key: user, value: JSON.stringify({ user, page }), timestamp: 1_800_000_000_000 + appended + i });
    }
    await log.append(records);
    appended += count;
  };

  const inspect = async () => {
    const r = await runTidemark(['inspect', checkpoint, '--json']);
    if (r.code !== 0) throw new Error(`inspect exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as { inFlight: { id: number; state: string } | null; positions: Record<string, number>; lastCommitted: number };
  };

  try {
    // Random kills from outside, each soon after a commit: mid-plan, mid-read, mid-stage, mid-delivery…
    const randomKills = 6;
    for (let k = 0; k < randomKills; k++) {
      if (k > 0) await appendClicks(10_000 + Math.floor(rand() * 50_000));
      const child = tidemark(['run', JOB], env);
      const line = await child.waitForLine(/"msg":"batch \d+ committed"/);
      const delay = Math.floor(rand() * 150);
      await sleep(delay);
      child.proc.kill('SIGKILL');
      const exit = await child.exited;
      expect(exit.signal).toBe('SIGKILL');
      const state = (await inspect()).inFlight;
      history.push(`kill ${k + 1}: ${delay} ms after ${(JSON.parse(line) as { msg: string }).msg}, left ${state ? `batch ${state.id} ${state.state}` : 'nothing in flight'}`);
    }

    // Kills at named points of the protocol: the daemon SIGKILLs itself there.
    const seamChecks: Array<[string, (v: Awaited<ReturnType<typeof inspect>>) => void]> = [
      ['planned', (v) => expect(v.inFlight?.state).toBe('planned')],
      ['staged', (v) => expect(v.inFlight?.state).toBe('staged')],
      ['delivered:page-counts', (v) => {
        expect(v.inFlight?.state).toBe('staged');
        expect(readdirSync(sinkDir)).toContain(`batch-${v.inFlight!.id}.jsonl`);
      }],
      ['committed', (v) => expect(v.inFlight).toBeNull()],
    ];
    for (const [phase, check] of seamChecks) {
      await appendClicks(5_000 + Math.floor(rand() * 20_000));
      const r = await runTidemark(['run', JOB], { ...env, TIDEMARK_CRASH_AT: phase });
      expect({ phase, signal: r.signal }).toEqual({ phase, signal: 'SIGKILL' });
      check(await inspect());
      history.push(`seam kill at ${phase}`);
    }

    // Drain: everything there is, then stop.
    const last = await runTidemark(['run', JOB, '--once'], env);
    expect({ code: last.code, stderr: last.stderr }).toEqual({ code: 0, stderr: '' });

    // The checkpoint: nothing in flight, positions at the log's ends.
    const log = await EmbeddedLog.open(logDir);
    const ends: Record<string, number> = {};
    for (let p = 0; p < log.partitions; p++) ends[`clicks/${p}`] = await log.end(p);
    const final = await inspect();
    expect(final.inFlight).toBeNull();
    expect(final.positions).toEqual(ends);
    expect(Object.values(ends).reduce((a, b) => a + b, 0)).toBe(SEED_RECORDS + appended);
    const n = final.lastCommitted;

    // The sink: exactly batch-1 … batch-N.
    const files = readdirSync(sinkDir).filter((f) => !f.startsWith('.'));
    expect(files.sort()).toEqual(Array.from({ length: n }, (_, i) => `batch-${i + 1}.jsonl`).sort());

    // Per-page totals over all files = the counts of the data (seed formula + what was appended).
    const fromFiles = new Map<string, number>();
    const fileOf = (id: number) => readFileSync(join(sinkDir, `batch-${id}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { page: string; clicks: number });
    for (let id = 1; id <= n; id++) for (const { page, clicks } of fileOf(id)) add(fromFiles, page, clicks);
    expect(new Map([...fromFiles].sort())).toEqual(new Map([...expected].sort()));

    // Each file is the count of exactly its batch's ranges; the ranges tile every partition from 0.
    const store = await openCheckpoint(checkpoint, { readOnly: true });
    const batches = (await store.batches()).reverse();
    await store.close();
    expect(batches.map((b) => b.id)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const next: Record<string, number> = {};
    for (const b of batches) {
      const values: string[] = [];
      for (const r of b.ranges) {
        const key = `${r.topic}/${r.partition}`;
        expect({ batch: b.id, key, from: r.from }).toEqual({ batch: b.id, key, from: next[key] ?? 0 });
        next[key] = r.until;
        for await (const chunk of log.read(r.partition, r.from, r.until)) values.push(...chunk.map((rec) => rec.value!.toString()));
      }
      expect({ batch: b.id, counts: fileOf(b.id) }).toEqual({ batch: b.id, counts: countPages(values) });
    }
    expect(next).toEqual(ends);
  } catch (err) {
    const note = `crash test seed ${seed} (replay with TIDEMARK_TEST_SEED=${seed}); ${history.join('; ')}`;
    console.error(note);
    if (err instanceof Error) err.message = `${note}\n${err.message}`;
    throw err;
  }
}, 180_000);
