// Real child processes for tests: spawn, wait for a line, wait for the exit, and kill
// whatever is still running when the test file ends.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { coverageEnv } from './coverage-env';

export const repoRoot = join(__dirname, '..', '..');
export const cliPath = join(repoRoot, 'bin', 'tidemark.js');
/** The built library (jest's global setup builds dist/ from the current sources). */
export const distIndex = join(repoRoot, 'dist', 'index.js');

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line matching `pattern` (rejects if the process exits first). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ChildProcess>();

/** Kills (SIGKILL) every child still running; tests register it with afterAll/afterEach. */
export function killAll(): void {
  for (const p of live) {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
  live.clear();
}

export function start(command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const proc = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], ...options, env: coverageEnv(options.env) });
  live.add(proc);
  let out = '';
  let err = '';
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void; from: number }> = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      const lines = out.slice(w.from).split('\n');
      lines.pop(); // only whole lines
      const line = lines.find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    check();
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('close', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
  });
  return {
    proc,
    pid: proc.pid!,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForLine(pattern, timeoutMs = 60_000) {
      return new Promise<string>((resolve, reject) => {
        const from = 0;
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; stdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        const w = {
          pattern, from, resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.push(w);
        check();
        void exited.then(({ code, signal }) => {
          if (!waiters.includes(w)) return;
          waiters.splice(waiters.indexOf(w), 1);
          clearTimeout(timer);
          reject(new Error(`process exited (code ${code}, signal ${signal}) before printing ${pattern}; stdout:\n${out}\nstderr:\n${err}`));
        });
      });
    },
  };
}

/** A child's state and the ends of its output, for a test's failure message. */
export function describeChild(name: string, child: Child, lines = 40): string {
  const tail = (text: string): string => text.split('\n').slice(-lines).join('\n');
  const { exitCode, signalCode } = child.proc;
  const state = exitCode === null && signalCode === null ? 'running' : `exited (code ${exitCode}, signal ${signalCode})`;
  return `--- ${name} (pid ${child.pid}) ${state}; stdout's last ${lines} lines:\n${tail(child.stdout())}\n--- ${name}'s stderr:\n${tail(child.stderr())}`;
}

/** `node bin/tidemark.js ...args`. */
export function tidemark(args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
  return start(process.execPath, [cliPath, ...args], { env: { ...process.env, ...env } });
}

/** Runs `node bin/tidemark.js ...args` to its end. */
export async function runTidemark(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = tidemark(args, env);
  const { code, signal } = await child.exited;
  return { code, signal, stdout: child.stdout(), stderr: child.stderr() };
}

/** `node -e <script>` with the built library as `tidemark` in scope. */
export function nodeScript(script: string, args: readonly string[] = []): Child {
  const prelude = `const tidemark = require(${JSON.stringify(distIndex)});\n`;
  return start(process.execPath, ['-e', prelude + script, '--', ...args]);
}
