// Helpers for the tests against the real broker that test/support/kafka-setup.js starts
// (scripts/kafka): topics, kafkajs producers, Kafka's own Java tools, running a job.
// No mocks: everything here talks to Apache Kafka.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners, type Admin, type ITopicConfig, type Message, type Producer } from 'kafkajs';
import { defineJob, Engine, kafkaSource, memorySink, type JobDefinition, type KafkaSource, type KafkaSourceOptions, type RunOptions, type RunSummary, type SourceRecord } from 'tidemark';
import { registerKafkaCodecs } from '../../src/kafka/codecs';
import { installThrottleHook } from '../../src/kafka/throttle-hook';

// The tests' own kafkajs clients too: kafkajs arms a negative timeout per connection, which Node ≥ 24 warns of on stderr.
installThrottleHook();

export const repoRoot = join(__dirname, '..', '..');
const script = join(repoRoot, 'scripts', 'kafka');

/** The bootstrap address: set by the kafka project's global setup. Missing means a failed setup: fail, never skip. */
export function bootstrap(): string {
  const b = process.env.KAFKA_BROKERS;
  if (!b) throw new Error('KAFKA_BROKERS is not set: the kafka test project starts a broker in its global setup (scripts/kafka start)');
  return b;
}

export function brokers(): string[] {
  return bootstrap().split(',');
}

/** A topic name no other test uses. */
export function uniqueTopic(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function client(brokerList: string[] = brokers()): Kafka {
  return new Kafka({ clientId: 'tidemark-tests', brokers: brokerList, logLevel: logLevel.NOTHING });
}

let sharedAdmin: Admin | undefined;

export async function admin(): Promise<Admin> {
  if (!sharedAdmin) {
    const a = client().admin();
    await a.connect();
    sharedAdmin = a;
  }
  return sharedAdmin;
}

/** Creates a topic and waits for its leaders. */
export async function createTopic(topic: string, partitions = 1, configs: Record<string, string> = {}): Promise<void> {
  const a = await admin();
  const configEntries: ITopicConfig['configEntries'] = Object.entries(configs).map(([name, value]) => ({ name, value }));
  const created = await a.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1, configEntries }], waitForLeaders: false });
  if (!created) throw new Error(`topic ${topic} existed already`);
  await waitForLeaders(a, topic, partitions);
}

/**
 * Waits until the topic's metadata names a leader for every partition. (kafkajs's own
 * `waitForLeaders` gives up on UNKNOWN_TOPIC_OR_PARTITION, which a KRaft broker answers
 * while a new topic's metadata is still propagating.)
 */
export async function waitForLeaders(a: Admin, topic: string, partitions: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const { topics } = await a.fetchTopicMetadata({ topics: [topic] });
      const parts = topics[0]?.partitions ?? [];
      if (parts.length === partitions && parts.every((p) => p.leader >= 0)) return;
    } catch (err) {
      if ((err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION' && (err as { type?: string }).type !== 'LEADER_NOT_AVAILABLE') throw err;
    }
    if (Date.now() > deadline) throw new Error(`topic ${topic} has no leader for every partition after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const producers: Producer[] = [];

export async function producer(options: Parameters<Kafka['producer']>[0] = {}): Promise<Producer> {
  // Idempotent: a send retried after a timeout (a loaded machine) must not write twice.
  const p = client().producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1, ...options });
  await p.connect();
  producers.push(p);
  return p;
}

/** Sends messages with kafkajs (acks all); returns the offsets given to them, per partition. */
export async function produce(topic: string, messages: Message[]): Promise<void> {
  const p = await producer();
  await p.send({ topic, messages, acks: -1 });
}

/** Produces `count` records `<tag><i>` round-robin over `partitions` partitions and adds their values to `produced`, per partition. */
export async function produceRecords(topic: string, partitions: number, count: number, produced: Map<number, string[]>, tag: string): Promise<void> {
  const messages = Array.from({ length: count }, (_, i) => ({ partition: i % partitions, value: `${tag}${i}` }));
  await produce(topic, messages);
  for (const m of messages) produced.set(m.partition, [...(produced.get(m.partition) ?? []), m.value]);
}

/** Closes the clients these helpers opened; call from afterAll. */
export async function closeClients(): Promise<void> {
  await Promise.allSettled(producers.splice(0).map((p) => p.disconnect()));
  const a = sharedAdmin;
  sharedAdmin = undefined;
  await a?.disconnect().catch(() => {});
}

export interface ToolResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one of Kafka's Java tools (`scripts/kafka tool NAME args`), optionally feeding stdin; fails on a non-zero exit. */
export function kafkaTool(name: string, args: readonly string[], input?: string, timeoutMs = 120_000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, 'tool', name, ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, KAFKA_HEAP_OPTS: '-Xmx256m' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`scripts/kafka tool ${name} ${args.join(' ')} exited with ${code ?? signal}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** Writes `key:value` lines with Kafka's Java console producer, compressed with `codec`. */
export async function javaConsoleProduce(topic: string, lines: readonly string[], props: Record<string, string> = {}): Promise<void> {
  const args = ['--bootstrap-server', bootstrap(), '--topic', topic, '--reader-property', 'parse.key=true', '--reader-property', 'key.separator=:'];
  for (const [k, v] of Object.entries({ acks: 'all', 'linger.ms': '50', ...props })) args.push('--command-property', `${k}=${v}`);
  await kafkaTool('console-producer', args, `${lines.join('\n')}\n`);
}

/**
 * Writes `records` records with Kafka's Java producer-perf-test: random bytes of `size`,
 * or with 'monotonic' the values 0, 1, 2 … as text.
 */
export async function javaPerfProduce(topic: string, records: number, size: number | 'monotonic', props: Record<string, string> = {}, extra: readonly string[] = []): Promise<string> {
  const payload = size === 'monotonic' ? ['--payload-monotonic'] : ['--record-size', String(size)];
  const args = ['--bootstrap-server', bootstrap(), '--topic', topic, '--num-records', String(records), ...payload, '--throughput', '-1', '--command-property'];
  for (const [k, v] of Object.entries({ acks: 'all', 'linger.ms': '5', ...props })) args.push(`${k}=${v}`);
  const { stdout } = await kafkaTool('producer-perf-test', [...args, ...extra]);
  return stdout;
}

export interface GroupRow {
  readonly topic: string;
  readonly partition: number;
  readonly currentOffset: number | undefined;
  readonly logEndOffset: number | undefined;
  readonly lag: number | undefined;
}

/** `kafka-consumer-groups --describe --group G`, parsed. */
export async function describeGroup(group: string): Promise<{ rows: GroupRow[]; text: string }> {
  const { stdout } = await kafkaTool('consumer-groups', ['--bootstrap-server', bootstrap(), '--describe', '--group', group]);
  const rows: GroupRow[] = [];
  const num = (s: string | undefined): number | undefined => (s === undefined || s === '-' ? undefined : Number(s));
  for (const line of stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols[0] !== group || cols.length < 6) continue;
    rows.push({ topic: cols[1]!, partition: Number(cols[2]), currentOffset: num(cols[3]), logEndOffset: num(cols[4]), lag: num(cols[5]) });
  }
  return { rows, text: stdout };
}

/** Earliest and latest offset per partition (kafkajs admin). */
export async function topicOffsets(topic: string): Promise<Map<number, { low: number; high: number }>> {
  const rows = await (await admin()).fetchTopicOffsets(topic);
  return new Map(rows.map((r) => [r.partition, { low: Number(r.low), high: Number(r.high) }]));
}

export function recordLines(records: readonly SourceRecord[]): string[] {
  return records.map((r) => `${r.topic}/${r.partition}@${r.offset}=${r.value?.toString() ?? 'null'}`);
}

export interface RunResult {
  readonly summary: RunSummary;
  /** Per committed batch (same order as `batches`), the records it read. */
  readonly records: SourceRecord[][];
  readonly source: KafkaSource;
  readonly batches: Array<{ id: number; ranges: ReadonlyArray<{ topic: string; partition: number; from: number; until: number }>; records: number }>;
}

/**
 * Runs a job on a kafkaSource whose transform passes every record through, until `run`
 * options say stop; returns the records each committed batch read, in batch order.
 */
export async function runKafkaJob(
  checkpointDir: string,
  sourceOptions: Partial<KafkaSourceOptions> & { groupId: string },
  run: RunOptions,
  job: Partial<JobDefinition<SourceRecord>> = {},
  engineHooks: { onEngine?: (engine: Engine<SourceRecord>) => void } = {},
): Promise<RunResult> {
  const source = kafkaSource({ brokers: brokers(), ...sourceOptions } as KafkaSourceOptions);
  const sink = memorySink<SourceRecord>();
  const batches: RunResult['batches'] = [];
  const read = new Map<number, SourceRecord[]>();
  const engine = new Engine(defineJob<SourceRecord>({
    name: 'kafka-test', source, sinks: [sink], stageOutputs: false, ...job,
    transform: (records, context) => {
      read.set(context.batchId, records);
      return records;
    },
    batch: { maxWaitMs: 0, pollIntervalMs: 50, ...job.batch },
  }), {
    checkpointDir,
    onBatch: (s) => batches.push({ id: s.id, ranges: s.ranges, records: s.records }),
  });
  engineHooks.onEngine?.(engine);
  const summary = await engine.run(run);
  // The records each committed batch read (a batch of sparse offsets may read none).
  const records = batches.map((b) => read.get(b.id) ?? []);
  return { summary, records, source, batches };
}

/** Runs `fn` every `ms` until it returns true or `timeoutMs` passes. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 60_000, ms = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, ms));
  }
}

export interface ReadRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Record<string, string>;
}

/** Every record of `topic` visible at `isolation`, per partition in offset order. Ends at each partition's last stable offset. */
export async function readTopic(brokerList: string[], topic: string, isolation: 'read_committed' | 'read_uncommitted' = 'read_committed'): Promise<ReadRecord[]> {
  registerKafkaCodecs(); // the sink may have written snappy or lz4
  const kafka = new Kafka({ clientId: 'tidemark-test-reader', brokers: brokerList, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = async (): Promise<Map<number, { low: number; high: number }>> =>
    new Map((await admin.fetchTopicOffsets(topic)).map((r) => [r.partition, { low: Number(r.low), high: Number(r.high) }]));
  // kafkajs answers with the last stable offset. Right after a transaction commits, its markers
  // may not be written yet and that offset is still moving: wait until it holds still for
  // 250 ms (a transaction left open keeps it still), for at most 5 s.
  let ends = await offsets();
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const again = await offsets();
    const still = [...again].every(([p, e]) => ends.get(p)?.high === e.high);
    ends = again;
    if (still) break;
  }
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

/**
 * Every visible record of a topic as a plain kafkajs consumer reads it (the reference a
 * test compares tidemark with): `partition@offset=value`, per partition in offset order.
 */
export async function rawRead(topic: string): Promise<string[]> {
  return (await readTopic(brokers(), topic)).map((r) => `${r.partition}@${r.offset}=${r.value ?? 'null'}`);
}
