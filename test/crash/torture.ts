// The crash-torture driver: runs `tidemark run` on test/crash/torture-job.ts as a real
// child process while a producer keeps writing, kills it with SIGKILL again and again —
// at random moments from outside, and at every named point of the protocol through the
// crash seam (TIDEMARK_CRASH_AT) — restarts it at once on the same checkpoint, and at the
// end drains cleanly and verifies that every produced record's effect is in the sink
// exactly once, in contiguous offset order, with one execution per batch.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../checkpoint/store';
import { EmbeddedLog } from '../../src/sources/embedded-log';
import { coverageEnv } from '../support/coverage-env';
import { prng } from '../support/prng';

const root = join(__dirname, '..', '..');
const cli = join(root, 'bin', 'tidemark.js');
const job = join(__dirname, 'torture-job.ts');

/** Where a seam kill can happen; the sink of the torture job is named `files`. */
export const SEAM_POINTS = [
  'recovering', 'planned', 'read', 'transformed', 'staged', 'delivering:files', 'delivered:files', 'committed', 'source-committed',
];

/** Writes records somewhere the torture job reads; values are unique (`r<seq>`). */
export interface Producer {
  readonly sourceEnv: Readonly<Record<string, string>>;
  start(): void;
  stop(): Promise<void>;
  /** Values produced, by partition, in offset order. */
  produced(): Promise<Map<number, string[]>>;
}

export interface TortureOptions {
  readonly kills: number;
  readonly dir: string;
  readonly producer: (dir: string) => Producer;
  /** Share of kills made through the crash seam (default 0.5). */
  readonly seamShare?: number;
  readonly seed?: number;
  /** More environment for the daemon, e.g. extra sinks of the torture job (TORTURE_PG_URL, TORTURE_KAFKA_SINK_TOPIC). */
  readonly env?: Readonly<Record<string, string>>;
  /** More seam points to kill at, e.g. `delivered:postgres` for an extra sink. */
  readonly extraSeamPoints?: readonly string[];
  readonly log?: (line: string) => void;
}

export interface TortureReport {
  readonly seed: number;
  readonly kills: number;
  readonly killsByPhase: Record<string, number>;
  readonly restarts: number;
  readonly produced: number;
  readonly outputsVerified: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly mixedExecutions: number;
  readonly outOfOrder: number;
  readonly inFlightAfterDrain: boolean;
  readonly lostRangesInCheckpoint: number;
  /** Spawn → first commit after a kill, including the source's connect (Kafka: join the group). */
  readonly recoveryMs: { readonly median: number; readonly max: number; readonly samples: number };
  /** The same without the first batch's read phase (Kafka: connect, group join, first fetch). */
  readonly recoveryExclReadMs: { readonly median: number; readonly max: number };
  readonly runSeconds: number;
}

interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  /** ms from spawn to the first `batch N committed` line, if any. */
  readonly firstCommitMs: number | undefined;
  /** The read phase of that first batch: for Kafka, the client's connect and group join. */
  readonly firstReadMs: number | undefined;
}

/** When to SIGKILL from outside: ms after spawn, or ms after the first commit (spawn + `limitMs` at the latest). */
type KillAt = { readonly afterStartMs: number } | { readonly afterFirstCommitMs: number; readonly limitMs: number };

function runDaemon(env: NodeJS.ProcessEnv, killAt: KillAt | undefined, args: string[] = []): Promise<RunResult> {
  const started = Date.now();
  const child = spawn(process.execPath, [cli, 'run', job, ...args], { cwd: root, env: coverageEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let buffered = '';
  let firstCommitMs: number | undefined;
  let firstReadMs: number | undefined;
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    const committed = lines.find((l) => /"msg":"batch \d+ committed"/.test(l));
    if (firstCommitMs === undefined && committed !== undefined) {
      firstCommitMs = Date.now() - started;
      firstReadMs = (JSON.parse(committed) as { durations?: { read?: number } }).durations?.read ?? 0;
      if (killAt && 'afterFirstCommitMs' in killAt) timers.push(setTimeout(() => child.kill('SIGKILL'), killAt.afterFirstCommitMs));
    }
  });
  const timers: NodeJS.Timeout[] = [];
  if (killAt) timers.push(setTimeout(() => child.kill('SIGKILL'), 'afterStartMs' in killAt ? killAt.afterStartMs : killAt.limitMs));
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({ code, signal, stderr, firstCommitMs, firstReadMs });
    });
  });
}

async function inFlightState(checkpoint: string): Promise<string> {
  if (!existsSync(join(checkpoint, 'db'))) return 'before-checkpoint';
  try {
    const store = await openCheckpoint(checkpoint, { readOnly: true });
    try {
      const view = await store.load();
      return view.inFlight ? view.inFlight.state : 'idle';
    } finally {
      await store.close();
    }
  } catch {
    return 'unknown';
  }
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function runTorture(options: TortureOptions): Promise<TortureReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  const log = options.log ?? (() => {});
  const started = Date.now();
  rmSync(options.dir, { recursive: true, force: true });
  mkdirSync(options.dir, { recursive: true });
  const checkpoint = join(options.dir, 'checkpoint');
  const producer = options.producer(options.dir);
  const env: NodeJS.ProcessEnv = { ...process.env, ...producer.sourceEnv, ...options.env, TORTURE_DIR: options.dir, TIDEMARK_CHECKPOINT: checkpoint, TIDEMARK_LOG_LEVEL: 'info' };
  delete env.TIDEMARK_CRASH_AT;

  const killsByPhase: Record<string, number> = {};
  const recovery: number[] = [];
  const recoveryExclRead: number[] = [];
  let restarts = 0;
  producer.start();
  try {
    for (let kill = 0; kill < options.kills; kill++) {
      const seam = rand() < (options.seamShare ?? 0.5);
      let result: RunResult;
      let phase: string;
      if (seam) {
        const points = [...SEAM_POINTS, ...(options.extraSeamPoints ?? [])];
        const point = points[Math.floor(rand() * points.length)]!;
        const nth = point === 'recovering' ? 1 : 1 + Math.floor(rand() * 3);
        // A point not reached in time (e.g. nothing to do) ends in an outside kill after 10 s.
        result = await runDaemon({ ...env, TIDEMARK_CRASH_AT: `${point}:${nth}` }, { afterStartMs: 30_000 });
        phase = `seam:${point}`;
      } else {
        // A quarter during start-up and recovery, the rest in steady state after the first commit.
        const killAt: KillAt = rand() < 0.25
          ? { afterStartMs: Math.floor(rand() * 1_500) }
          : { afterFirstCommitMs: Math.floor(rand() * 400), limitMs: 30_000 };
        result = await runDaemon(env, killAt);
        phase = `random:${'afterStartMs' in killAt ? 'startup' : 'running'}:${await inFlightState(checkpoint)}`;
      }
      restarts++;
      if (result.signal !== 'SIGKILL') {
        throw new Error(`kill ${kill} (${phase}): the daemon exited with code ${result.code} instead of being killed (seed ${seed}):\n${result.stderr}`);
      }
      if (kill > 0 && result.firstCommitMs !== undefined) {
        recovery.push(result.firstCommitMs);
        recoveryExclRead.push(result.firstCommitMs - (result.firstReadMs ?? 0));
      }
      killsByPhase[phase] = (killsByPhase[phase] ?? 0) + 1;
      if ((kill + 1) % 50 === 0) log(`${kill + 1}/${options.kills} kills, ${Math.round((Date.now() - started) / 1000)} s`);
    }
  } finally {
    await producer.stop();
  }

  // A final clean drain: everything produced is processed, nothing stays in flight.
  const drain = await runDaemon(env, undefined, ['--once']);
  if (drain.code !== 0) throw new Error(`the final drain exited with ${drain.code ?? drain.signal} (seed ${seed}):\n${drain.stderr}`);

  const produced = await producer.produced();
  const report = verify(options.dir, produced);
  const store = await openCheckpoint(checkpoint, { readOnly: true });
  const view = await store.load();
  const lostRanges = await store.lostRanges();
  await store.close();
  return {
    seed, kills: options.kills, killsByPhase, restarts, ...report,
    inFlightAfterDrain: view.inFlight !== undefined, lostRangesInCheckpoint: lostRanges.length,
    recoveryMs: { median: median(recovery), max: Math.max(0, ...recovery), samples: recovery.length },
    recoveryExclReadMs: { median: median(recoveryExclRead), max: Math.max(0, ...recoveryExclRead) },
    runSeconds: Math.round((Date.now() - started) / 1000),
  };
}

interface OutputLine {
  readonly p: number;
  readonly o: number;
  readonly v: string;
  readonly execution: string;
}

/** Every output of the file sink as `p:o:v:execution`, sorted: what each other sink of the run must hold exactly. */
export function fileSinkKeys(dir: string): string[] {
  const out = join(dir, 'out', 'files');
  return readdirSync(out).filter((f) => /^batch-\d+\.jsonl$/.test(f))
    .flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => outputKey(JSON.parse(l) as OutputLine)).sort();
}

/** The identity of one output, execution id included (a replayed batch must not re-run its transform). */
export function outputKey(t: OutputLine): string {
  return `${t.p}:${t.o}:${t.v}:${t.execution}`;
}

function verify(dir: string, produced: Map<number, string[]>): Pick<TortureReport, 'produced' | 'outputsVerified' | 'lost' | 'duplicated' | 'mixedExecutions' | 'outOfOrder'> {
  const out = join(dir, 'out', 'files');
  const ids = readdirSync(out).filter((f) => /^batch-\d+\.jsonl$/.test(f)).map((f) => Number(f.slice(6, -6))).sort((a, b) => a - b);
  const seen = new Map<string, number>();
  const next = new Map<number, number>();
  let mixedExecutions = 0;
  let outOfOrder = 0;
  let outputs = 0;
  for (const id of ids) {
    const lines = readFileSync(join(out, `batch-${id}.jsonl`), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as OutputLine);
    if (new Set(lines.map((l) => l.execution)).size > 1) mixedExecutions++;
    for (const l of lines) {
      outputs++;
      seen.set(l.v, (seen.get(l.v) ?? 0) + 1);
      // Continuity: per partition, outputs in batch order walk the offsets one by one.
      if (l.o !== (next.get(l.p) ?? 0)) outOfOrder++;
      next.set(l.p, l.o + 1);
    }
  }
  let total = 0;
  let lost = 0;
  for (const values of produced.values()) {
    for (const v of values) {
      total++;
      if (!seen.has(v)) lost++;
    }
  }
  let duplicated = 0;
  for (const n of seen.values()) if (n > 1) duplicated += n - 1;
  return { produced: total, outputsVerified: outputs, lost, duplicated, mixedExecutions, outOfOrder };
}

/** The embedded log as the source: the driver appends `r<seq>` values every 20 ms. */
export function embeddedProducer(dir: string, perTick = 40): Producer {
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  let pending = Promise.resolve();
  let log: EmbeddedLog | undefined;
  const logDir = join(dir, 'log');
  const tick = (): void => {
    pending = pending.then(async () => {
      log ??= await EmbeddedLog.open(logDir, { topic: 'torture', partitions: 4 });
      await log.append(Array.from({ length: perTick }, () => ({ value: `r${seq++}` })));
    });
  };
  return {
    sourceEnv: { TORTURE_SOURCE: 'embedded' },
    start() {
      tick();
      timer = setInterval(tick, 20);
    },
    async stop() {
      clearInterval(timer);
      await pending;
    },
    async produced() {
      const l = await EmbeddedLog.open(logDir, { topic: 'torture' });
      const byPartition = new Map<number, string[]>();
      for (let p = 0; p < l.partitions; p++) {
        const values: string[] = [];
        for await (const chunk of l.read(p, 0, await l.end(p))) for (const r of chunk) values.push(r.value!.toString());
        byPartition.set(p, values);
      }
      return byPartition;
    },
  };
}

export function printReport(report: TortureReport, path = join(__dirname, 'last-report.json')): string {
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  const rows = [
    ['kills', report.kills], ['restarts', report.restarts], ['records produced', report.produced],
    ['outputs verified', report.outputsVerified], ['lost', report.lost], ['duplicated', report.duplicated],
    ['batches with mixed executions', report.mixedExecutions], ['out of order', report.outOfOrder],
    ['recovery median ms (start → first commit)', report.recoveryMs.median], ['recovery max ms', report.recoveryMs.max],
    ['  without the first read (source connect)', `${report.recoveryExclReadMs.median} median, ${report.recoveryExclReadMs.max} max`],
    ['run seconds', report.runSeconds], ['seed', report.seed],
    ...Object.entries(report.killsByPhase).sort().map(([p, n]) => [`  kills at ${p}`, n]),
  ];
  return rows.map(([k, v]) => `${String(k).padEnd(44)} ${v}`).join('\n');
}
