// A daemon that runs for weeks restarts its Kafka consumer whenever a new topic joins (a
// pattern subscription, added partitions): those restarts must not leak file descriptors or
// listeners (issue 17).
import { readdirSync } from 'node:fs';
import { kafkaSource, type SourceRecord } from 'tidemark';
import { brokers, closeClients, createTopic, produce, uniqueTopic } from '../support/kafka';

afterAll(closeClients);

const openFds = (): number => readdirSync('/proc/self/fd').length;
const listeners = (): number => process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0);

it('25 consumer restarts (one per new topic) leave the open files and process listeners as they were', async () => {
  const topics = Array.from({ length: 25 }, (_, i) => uniqueTopic(`leak${i}`));
  for (const t of topics) {
    await createTopic(t, 1);
    await produce(t, [{ value: `${t}-0` }, { value: `${t}-1` }]);
  }
  const source = kafkaSource({ brokers: brokers(), topics, groupId: uniqueTopic('leak-group') });
  const readTopic = async (topic: string): Promise<string[]> => {
    const got: SourceRecord[] = [];
    for await (const chunk of source.read([{ topic, partition: 0, from: 0, until: 2 }], new AbortController().signal)) got.push(...chunk);
    return got.map((r) => r.value!.toString());
  };
  try {
    // Warm-up: the first restarts open the broker connections and the process-wide hooks.
    for (const t of topics.slice(0, 3)) expect(await readTopic(t)).toEqual([`${t}-0`, `${t}-1`]);
    const before = { fds: openFds(), listeners: listeners(), starts: source.stats().consumerStarts };
    for (const t of topics.slice(3)) expect(await readTopic(t)).toEqual([`${t}-0`, `${t}-1`]);
    const after = { fds: openFds(), listeners: listeners(), starts: source.stats().consumerStarts };
    expect(after.starts - before.starts).toBe(topics.length - 3); // each new topic restarted the consumer
    expect({ fds: after.fds, listeners: after.listeners }).toEqual({ fds: before.fds, listeners: before.listeners });
  } finally {
    await source.close();
  }
}, 120_000);
