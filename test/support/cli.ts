// Running the real `tidemark` binary (bin/tidemark.js → dist/, built by jest's global
// setup) as a child process, the way a user or a container does.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { InspectReport } from '../../checkpoint/inspect';
import { coverageEnv } from './coverage-env';

export const ROOT = join(__dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'tidemark.js');

export interface Result {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The test's environment without any TIDEMARK_* setting of the caller's; metrics bind to 127.0.0.1 only. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TIDEMARK_')) env[k] = v;
  return coverageEnv({ ...env, TIDEMARK_METRICS_HOST: '127.0.0.1', ...extra });
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  readonly input?: string;
}

const running = new Set<ChildProcess>();
// A test that fails while a daemon runs must not leave it behind.
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

/** A running `tidemark` process. */
export class Tidemark {
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<Result>;
  private readonly watchers = new Set<() => void>();
  private closed = false;

  constructor(args: readonly string[], options: RunOptions = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: childEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.stdout += s;
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
      this.notify();
    });
    running.add(this.child);
    this.child.stdin!.end(options.input ?? '');
    this.exited = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (code, signal) => {
        this.closed = true;
        running.delete(this.child);
        this.notify();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  private notify(): void {
    for (const w of [...this.watchers]) w();
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The JSON log lines written so far. */
  logs(): Array<Record<string, unknown>> {
    return this.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /**
   * Resolves when `check` returns a value (checked on every output, every 20 ms for things
   * like files, and at exit); rejects if the process exits first.
   */
  waitFor<R>(check: () => R | undefined | false, what: string): Promise<R> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.watchers.delete(watcher);
        clearInterval(timer);
      };
      const watcher = (): void => {
        const found = check();
        if (found !== undefined && found !== false) {
          done();
          resolve(found);
        } else if (this.closed) {
          done();
          reject(new Error(`tidemark exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`));
        }
      };
      const timer = setInterval(watcher, 20);
      this.watchers.add(watcher);
      watcher();
    });
  }

  /** Waits for a log line whose message matches. */
  waitForLog(message: RegExp): Promise<Record<string, unknown>> {
    return this.waitFor(() => this.logs().find((l) => message.test(String(l.msg))), `a log line matching ${message}`);
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

export function start(args: readonly string[], options: RunOptions = {}): Tidemark {
  return new Tidemark(args, options);
}

/** Runs `tidemark args…` to completion. */
export function tidemark(args: readonly string[], options: RunOptions = {}): Promise<Result> {
  return new Tidemark(args, options).exited;
}

/** Writes a file (creating its directory); returns its path. */
export function write(path: string, text: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

export interface GeneratorJobOptions {
  readonly name?: string;
  readonly partitions?: number;
  readonly size?: number;
  /** The log start of every partition (offsets below it are "deleted by retention"). */
  readonly earliest?: number;
  readonly maxRecordsPerPartition?: number;
  /** batch.maxInFlight (default 2): 1 makes a crash point name one batch's state, not a race of two. */
  readonly maxInFlight?: number;
  /** The output of one record, a JS expression over `r` (a SourceRecord); change it to change the code's fingerprint. */
  readonly output?: string;
  /** Extra fields of the job definition, as TypeScript source. */
  readonly extra?: string;
  /**
   * When set, batches with id ≥ this wait in the transform until a file `gate` exists in
   * `dir`, after writing `entered-<id>` there: a test can hold a batch in flight.
   */
  readonly gateFrom?: number;
  /** A statement run before the job is defined (e.g. throw). */
  readonly prelude?: string;
}

/**
 * A job over the generator source (record (p, o) is a pure function of both; timestamp
 * 1_700_000_000_000 + offset) writing one file per batch to `<dir>/out/files/`.
 */
export function generatorJob(dir: string, o: GeneratorJobOptions = {}): string {
  return `import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineJob, fileSink, generatorSource } from 'tidemark';
const dir = ${JSON.stringify(dir)};
void existsSync; void writeFileSync; void join;
${o.prelude ?? ''}
export default defineJob({
  name: ${JSON.stringify(o.name ?? 'gen')},
  source: generatorSource({ partitions: ${o.partitions ?? 2}, size: ${o.size ?? 100}${o.earliest !== undefined ? `, earliest: () => ${o.earliest}` : ''} }),
  sinks: [fileSink({ dir: join(dir, 'out') })],
  async transform(records, { batchId }) {
    ${o.gateFrom !== undefined ? `if (batchId >= ${o.gateFrom}) {
      writeFileSync(join(dir, 'entered-' + batchId), '');
      while (!existsSync(join(dir, 'gate'))) await new Promise((resolve) => setTimeout(resolve, 10));
    }` : 'void batchId;'}
    return records.map((r) => ${o.output ?? '`${r.partition}:${r.offset}`'});
  },
  batch: { maxRecordsPerPartition: ${o.maxRecordsPerPartition ?? 30}, pollIntervalMs: 20${o.maxInFlight !== undefined ? `, maxInFlight: ${o.maxInFlight}` : ''} },
  ${o.extra ?? ''}
});
`;
}

/** The outputs the file sink wrote under `<dir>/out/files`, per batch id. */
export function batchFiles(dir: string): Map<number, unknown[]> {
  const out = join(dir, 'out', 'files');
  const batches = new Map<number, unknown[]>();
  if (!existsSync(out)) return batches;
  for (const name of readdirSync(out)) {
    const m = /^batch-(\d+)\.jsonl$/.exec(name);
    if (!m) continue;
    const lines = readFileSync(join(out, name), 'utf8').split('\n').filter((l) => l !== '');
    batches.set(Number(m[1]), lines.map((l) => JSON.parse(l) as unknown));
  }
  return new Map([...batches].sort(([a], [b]) => a - b));
}

/** Every output of every batch, in batch order. */
export function allOutputs(dir: string): unknown[] {
  return [...batchFiles(dir).values()].flat();
}

/** `"<p>:<o>"` for every offset of `[from, until)` of each partition. */
export function offsets(partitions: number, from: number, until: number): string[] {
  const all: string[] = [];
  for (let p = 0; p < partitions; p++) for (let o = from; o < until; o++) all.push(`${p}:${o}`);
  return all;
}

/** Parses `tidemark inspect --json` output. */
export function report(result: Result): InspectReport {
  try {
    return JSON.parse(result.stdout) as InspectReport;
  } catch {
    throw new Error(`inspect --json printed no JSON (exit ${result.code})\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/** Runs `tidemark args…` on a pseudo-terminal (util-linux `script`), typing `input`: for prompts that only a terminal gets. */
export function onTerminal(args: readonly string[], input: string): Promise<Result> {
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, BIN, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input);
  });
}
