// Helpers for the Kafka sink tests: duplicates in what a topic holds, and a broker of a
// test's own. (Reading a whole topic: readTopic in ../support/kafka.)
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../support/kafka';

/** Values that occur more than once, and how often. */
export function duplicates(values: readonly (string | null)[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
  return Object.fromEntries([...counts].filter(([, n]) => n > 1));
}

/**
 * A single-node broker of a test's own (scripts/kafka with its own state dir) that the test
 * may kill and restart: the shared broker serves other test files at the same time.
 */
export function privateBroker(): { brokers: () => string[]; kill: () => void; restart: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-kafka-private-'));
  chmodSync(dir, 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env, TIDEMARK_KAFKA_DIR: join(dir, 'kafka') };
  delete env.KAFKA_BROKERS;
  const run = (cmd: string): string => execFileSync('bash', [join(repoRoot, 'scripts', 'kafka'), cmd], {
    env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000,
  }).trim().split('\n').pop()!;
  let bootstrap = '';
  beforeAll(() => {
    bootstrap = run('start');
  }, 300_000);
  afterAll(() => {
    try {
      run('stop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
  return {
    brokers: () => [bootstrap],
    kill: () => {
      const pid = Number(readFileSync(join(dir, 'kafka', 'kafka.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
    },
    restart: () => void run('restart'),
  };
}
