// Group mode's real-process tests: N `tidemark run` daemons of test/kafka/group-job.ts on one
// topic, each with its own checkpoint, and the check that the sinks hold every produced
// record's output exactly once.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'pg';
import { describeChild, repoRoot, tidemark, type Child } from './processes';

export const groupJob = join(repoRoot, 'test', 'kafka', 'group-job.ts');

export interface GroupRun {
  readonly dir: string;
  readonly topic: string;
  readonly brokers: string;
  readonly env?: Record<string, string>;
}

/** Starts daemon `i` of the group (checkpoint `<dir>/cp-<i>`). */
export function startDaemon(run: GroupRun, i: number): Child {
  mkdirSync(run.dir, { recursive: true });
  // tidemark() passes coverageEnv() on; test/support/cli.ts's childEnv() cannot be imported outside jest (the long form).
  return tidemark(['run', groupJob, '--checkpoint', join(run.dir, `cp-${i}`), '--progress', 'never'], {
    KAFKA_BROKERS: run.brokers, GROUP_TOPIC: run.topic, GROUP_OUT: join(run.dir, 'out'), ...run.env,
  });
}

/** The JSON lines a daemon logged with `event` set (assigned, revoked, handoff, dropped). */
export function events(child: Child, event?: string): Array<Record<string, unknown>> {
  return child.stdout().split('\n').flatMap((line) => {
    if (!line.startsWith('{')) return [];
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      return o.event !== undefined && (event === undefined || o.event === event) ? [o] : [];
    } catch {
      return [];
    }
  });
}

export interface RangeFile {
  readonly partition: number;
  readonly from: number;
  readonly until: number;
  readonly values: string[];
}

/** The range files of the sink, per partition, sorted by `from`. */
export function rangeFiles(dir: string): Map<number, RangeFile[]> {
  const out = new Map<number, RangeFile[]>();
  let names: string[] = [];
  try {
    names = readdirSync(join(dir, 'out'));
  } catch {
    return out;
  }
  for (const name of names) {
    const m = /^part-.+-(\d+)-(\d+)-(\d+)\.jsonl$/.exec(name);
    if (!m) continue;
    const text = readFileSync(join(dir, 'out', name), 'utf8');
    const values = text.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { v: string }).v);
    const f = { partition: Number(m[1]), from: Number(m[2]), until: Number(m[3]), values };
    out.set(f.partition, [...(out.get(f.partition) ?? []), f]);
  }
  for (const list of out.values()) list.sort((a, b) => a.from - b.from || a.until - b.until);
  return out;
}

export interface ExactlyOnce {
  readonly expected: number;
  readonly found: number;
  readonly lost: number;
  readonly duplicated: number;
  /** Ranges of a partition that do not continue each other (a gap or an overlap). */
  readonly discontinuities: string[];
}

/** Compares the range files with what was produced per partition (values in offset order). */
export function checkRangeFiles(dir: string, produced: ReadonlyMap<number, readonly string[]>): ExactlyOnce {
  const files = rangeFiles(dir);
  let expected = 0;
  let found = 0;
  let lost = 0;
  let duplicated = 0;
  const discontinuities: string[] = [];
  for (const [partition, values] of produced) {
    expected += values.length;
    const list = files.get(partition) ?? [];
    let at = list[0]?.from ?? 0;
    const seen = new Map<string, number>();
    for (const f of list) {
      if (f.from !== at) discontinuities.push(`${partition}: [${f.from}, ${f.until}) after ${at}`);
      at = f.until;
      for (const v of f.values) seen.set(v, (seen.get(v) ?? 0) + 1);
    }
    for (const v of values) {
      const n = seen.get(v) ?? 0;
      if (n === 0) lost++;
      if (n > 1) duplicated += n - 1;
      found += Math.min(n, 1);
    }
  }
  return { expected, found, lost, duplicated, discontinuities };
}

/** Counts, against what was produced per partition, the values of `outputs` (a sink's `{p, v}` outputs, in any order). */
export function checkOutputs(outputs: ReadonlyArray<{ readonly p: number; readonly v: string }>, produced: ReadonlyMap<number, readonly string[]>): { found: number; lost: number; duplicated: number } {
  const seen = new Map<string, number>();
  for (const o of outputs) seen.set(`${o.p}:${o.v}`, (seen.get(`${o.p}:${o.v}`) ?? 0) + 1);
  let found = 0;
  let lost = 0;
  let duplicated = 0;
  for (const [p, values] of produced) {
    for (const v of values) {
      const n = seen.get(`${p}:${v}`) ?? 0;
      if (n === 0) lost++;
      else found++;
      if (n > 1) duplicated += n - 1;
    }
  }
  return { found, lost, duplicated };
}

/** The PostgreSQL sink of the group job on a fresh schema of PG_URL: the daemons' environment, and its check. */
export async function groupPostgres(): Promise<{ env: Record<string, string>; check(produced: ReadonlyMap<number, readonly string[]>): Promise<{ found: number; lost: number; duplicated: number }>; close(): Promise<void> }> {
  const url = process.env.PG_URL;
  if (!url) throw new Error('PG_URL is not set: group mode\'s tests check the PostgreSQL sink too (the postgres project\'s global setup starts a server; npm test runs both)');
  const schema = `group_${randomBytes(4).toString('hex')}`;
  const pool = new Pool({ connectionString: url, options: `-c search_path=${schema}`, max: 1 });
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query('CREATE TABLE group_out (p int NOT NULL, o bigint NOT NULL, v text NOT NULL)');
  return {
    env: { GROUP_PG_URL: url, GROUP_PG_SCHEMA: schema },
    async check(produced) {
      const rows = await pool.query<{ p: number; v: string }>('SELECT p, v FROM group_out');
      return checkOutputs(rows.rows, produced);
    },
    close: () => pool.end(),
  };
}

/** Waits until `ok()` or the timeout; a timeout's message shows the state and output of the `daemons` watched. */
export async function until(ok: () => boolean, timeoutMs: number, what: string, daemons: Record<string, Child> = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) {
      const shown = Object.entries(daemons).map(([name, child]) => `\n${describeChild(name, child)}`).join('');
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${shown}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
