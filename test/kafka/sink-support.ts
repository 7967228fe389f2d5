// Helpers for the Kafka sink tests: reading a whole output topic with a plain kafkajs
// consumer (read_committed, as the downstream consumers the sink promises exactly-once
// to, or read_uncommitted, to see aborted transactions too), and a broker of a test's own.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { registerKafkaCodecs } from 'tidemark';
import { repoRoot, uniqueTopic } from '../support/kafka';

export interface ReadRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Record<string, string>;
}

/** Every record of `topic` visible at `isolation`, per partition in offset order. Ends at each partition's last stable offset. */
export async function readTopic(brokers: string[], topic: string, isolation: 'read_committed' | 'read_uncommitted' = 'read_committed'): Promise<ReadRecord[]> {
  registerKafkaCodecs(); // the sink may have written snappy or lz4
  const kafka = new Kafka({ clientId: 'tidemark-sink-tests', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((r) => [r.partition, { low: Number(r.low), high: Number(r.high) }]));
  await admin.disconnect();
  const consumer = kafka.consumer({ groupId: uniqueTopic('sink-reader'), maxWaitTimeInMs: 200, readUncommitted: isolation === 'read_uncommitted' });
  const got = new Map<number, ReadRecord[]>();
  const position = new Map<number, number>();
  const done = (): boolean => [...ends].every(([p, e]) => (position.get(p) ?? e.low) >= e.high);
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const list = got.get(batch.partition) ?? [];
        for (const m of batch.messages) {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
          list.push({ partition: batch.partition, offset: Number(m.offset), key: m.key?.toString() ?? null, value: m.value?.toString() ?? null, headers });
        }
        got.set(batch.partition, list);
        position.set(batch.partition, Number(batch.lastOffset()) + 1);
        if (done()) finish();
      },
    });
    if (!done()) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`readTopic ${topic}: timed out`)), 60_000)));
      try {
        await Promise.race([finished, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
  } finally {
    await consumer.disconnect();
  }
  return [...got.keys()].sort((a, b) => a - b).flatMap((p) => got.get(p)!);
}

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
