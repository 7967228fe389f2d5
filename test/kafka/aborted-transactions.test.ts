// read_committed as Kafka's Java consumer has it. Two transactional producers and a plain
// one write interleaved transactions to one partition; what a tidemark job reads must be
// what Kafka's own console consumer prints with --isolation-level read_committed. The
// nested case (p1 begins, p2 begins, p2 aborts, p1 aborts) is the one kafkajs 2.2.4 gets
// wrong: the broker lists aborted transactions in the order they ended, and kafkajs
// assumes them sorted by first offset (src/kafka/aborted-transactions.ts).
import { join } from 'node:path';
import type { Producer, Transaction } from 'kafkajs';
import { bootstrap, closeClients, createTopic, kafkaTool, produce, producer, runKafkaJob, topicOffsets, uniqueTopic } from '../support/kafka';
import { prng } from '../support/prng';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

type Who = 'p1' | 'p2' | 'plain';
type Step = readonly [Who, 'send' | 'commit' | 'abort'];

/** Runs `steps` in order: a transactional producer's send begins its transaction when none is open. */
async function write(topic: string, steps: readonly Step[]): Promise<void> {
  const producers: Record<'p1' | 'p2', Producer> = {
    p1: await producer({ transactionalId: `${topic}-p1`, idempotent: true, maxInFlightRequests: 1 }),
    p2: await producer({ transactionalId: `${topic}-p2`, idempotent: true, maxInFlightRequests: 1 }),
  };
  const open = new Map<Who, Transaction>();
  let n = 0;
  for (const [who, act] of steps) {
    const value = `${who}-${n++}`;
    if (who === 'plain') {
      await produce(topic, [{ value, partition: 0 }]);
      continue;
    }
    let t = open.get(who);
    if (act === 'send') {
      if (!t) open.set(who, (t = await producers[who].transaction()));
      await t.send({ topic, messages: [{ value, partition: 0 }, { value: `${value}b`, partition: 0 }] });
    } else if (t) {
      await (act === 'commit' ? t.commit() : t.abort());
      open.delete(who);
    }
  }
  for (const t of open.values()) await t.commit();
}

/** The values a read_committed reader must see: plain ones and those of committed transactions, in write order. */
function committedValues(steps: readonly Step[]): string[] {
  const seen: Array<{ value: string; txn?: { committed: boolean } }> = [];
  const open = new Map<Who, { committed: boolean }>();
  let n = 0;
  for (const [who, act] of steps) {
    const value = `${who}-${n++}`;
    if (who === 'plain') {
      seen.push({ value });
    } else if (act === 'send') {
      const txn = open.get(who) ?? { committed: false };
      open.set(who, txn);
      seen.push({ value, txn }, { value: `${value}b`, txn });
    } else if (open.has(who)) {
      open.get(who)!.committed = act === 'commit';
      open.delete(who);
    }
  }
  for (const txn of open.values()) txn.committed = true;
  return seen.filter((r) => !r.txn || r.txn.committed).map((r) => r.value);
}

/** `offset:value` of every record Kafka's Java consumer returns under read_committed. */
async function javaReadCommitted(topic: string): Promise<string[]> {
  const { stdout } = await kafkaTool('console-consumer', [
    '--bootstrap-server', bootstrap(), '--topic', topic, '--from-beginning', '--isolation-level', 'read_committed',
    '--timeout-ms', '5000', '--formatter-property', 'print.offset=true', '--formatter-property', 'print.value=true',
  ]);
  return stdout.split('\n').filter((l) => l.startsWith('Offset:')).map((l) => {
    const [offset, value] = l.slice('Offset:'.length).split('\t');
    return `${offset}:${value}`;
  });
}

function randomSteps(seed: number, count: number): Step[] {
  const next = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  return Array.from({ length: count }, () => [pick(['p1', 'p2', 'p1', 'p2', 'plain'] as const), pick(['send', 'send', 'commit', 'abort'] as const)] as const);
}

describe('kafkaSource under read_committed reads what the Java consumer reads', () => {
  const root = tempDir();

  async function compare(name: string, steps: readonly Step[], seed?: number): Promise<void> {
    const topic = uniqueTopic(`txn-${name}`);
    await createTopic(topic, 1);
    await write(topic, steps);
    const java = await javaReadCommitted(topic);
    // The log's end after the Java read: a commit or abort returns before the coordinator has
    // written its markers, so the end read right after write() could miss the last ones.
    const end = (await topicOffsets(topic)).get(0)!.high;
    expect({ seed, java: java.map((r) => r.slice(r.indexOf(':') + 1)) }).toEqual({ seed, java: committedValues(steps) });
    // Whole fetches, and fetches of one record batch each (maxBytesPerPartition 1: the broker
    // still returns the first batch), which start inside transactions.
    for (const maxBytesPerPartition of [undefined, 1]) {
      const run = await runKafkaJob(join(root, `${topic}-${maxBytesPerPartition ?? 'all'}`), {
        topics: [topic], groupId: `${topic}-job`, isolation: 'read_committed', ...(maxBytesPerPartition ? { consumer: { maxBytesPerPartition } } : {}),
      }, { once: true }, { batch: { maxRecordsPerPartition: 5 } });
      expect(run.summary.positions).toEqual({ [`${topic}/0`]: end });
      const tidemark = run.records.flat().map((r) => `${r.offset}:${r.value!.toString()}`);
      expect({ seed, maxBytesPerPartition, records: tidemark }).toEqual({ seed, maxBytesPerPartition, records: java });
    }
  }

  it('nested transactions: the one begun first and ended last, committed or aborted', async () => {
    const nested = (inner: 'commit' | 'abort', outer: 'commit' | 'abort'): Step[] =>
      [['p1', 'send'], ['plain', 'send'], ['p2', 'send'], ['p1', 'send'], ['p2', inner], ['plain', 'send'], ['p1', outer]];
    const steps: Step[] = [
      ...nested('abort', 'abort'), ...nested('commit', 'abort'), ...nested('abort', 'commit'), ...nested('commit', 'commit'),
      // overlapping, not nested: p1 ends first
      ['p1', 'send'], ['p2', 'send'], ['p1', 'abort'], ['p2', 'abort'], ['plain', 'send'],
    ];
    await compare('nested', steps);
  });

  it('random interleavings of two transactional producers and a plain one', async () => {
    const seed = Number(process.env.TIDEMARK_PROPERTY_SEED ?? Date.now() % 1_000_000);
    await compare('random', randomSteps(seed, 60), seed);
  });
});
