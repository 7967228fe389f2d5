// The Kafka sink under real crashes: `tidemark run` dies (SIGKILL) at a protocol point or in
// the middle of a Kafka transaction, is restarted on the same checkpoint, and a
// read_committed consumer of the output topic must then see every output exactly once,
// each batch from one execution. The key case is `delivered:kafka`: the transaction with
// the outputs and the ledger offset committed, the checkpoint does not know it, and the
// redelivery must find the batch id in the ledger group and skip it.
import { join } from 'node:path';
import { brokers, closeClients, createTopic, readTopic, uniqueTopic } from '../support/kafka';
import { killAll, runTidemark } from '../support/processes';
import { tempDir } from '../support/tmp';
import { duplicates } from './sink-support';

afterAll(async () => {
  killAll();
  await closeClients();
});
const root = tempDir('tidemark-kafka-sink-crash-');
const JOB = join(__dirname, 'sink-job.ts');
const SIZE = 3000; // per partition, 2 partitions, 500 per partition per batch: 6 batches of 1,000

const cases: Array<{ name: string; env: Record<string, string> }> = [
  { name: 'delivered:kafka:3 (after the commit, before the checkpoint commit)', env: { TIDEMARK_CRASH_AT: 'delivered:kafka:3' } },
  { name: 'delivered:kafka:1', env: { TIDEMARK_CRASH_AT: 'delivered:kafka:1' } },
  { name: 'delivering:kafka:2 (before the transaction)', env: { TIDEMARK_CRASH_AT: 'delivering:kafka:2' } },
  { name: 'in the middle of the transaction of batch 3', env: { KILL_AT_OUTPUT: '2600' } },
  { name: 'committed:4', env: { TIDEMARK_CRASH_AT: 'committed:4' } },
];

describe.each(cases)('killed $name, then restarted', ({ name, env: crashEnv }) => {
  it('a read_committed consumer sees every output exactly once, each batch from one execution', async () => {
    const topic = uniqueTopic('sink-crash');
    await createTopic(topic, 3);
    const checkpoint = join(root, topic);
    const env = { KAFKA_BROKERS: brokers().join(','), SINK_TOPIC: topic, JOB_SIZE: String(SIZE), TIDEMARK_LOG_LEVEL: 'info' };

    const crashed = await runTidemark(['run', JOB, '--checkpoint', checkpoint, '--once'], { ...env, ...crashEnv });
    expect({ signal: crashed.signal, stderr: crashed.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
    const firstPid = Number(/"pid":(\d+)/.exec(crashed.stdout)?.[1]);

    const resumed = await runTidemark(['run', JOB, '--checkpoint', checkpoint, '--once'], env);
    expect({ code: resumed.code, stderr: resumed.stderr }).toEqual({ code: 0, stderr: '' });

    const got = await readTopic(brokers(), topic);
    const lineage = got.map((r) => `${r.headers['tidemark.source.partition']}:${r.headers['tidemark.source.offset']}`);
    expect(duplicates(lineage)).toEqual({});
    expect(got).toHaveLength(2 * SIZE);
    expect(new Set(lineage).size).toBe(2 * SIZE);
    for (const r of got) {
      const [p, o] = r.value!.split(':');
      expect(`${p}:${o}`).toBe(`${r.headers['tidemark.source.partition']}:${r.headers['tidemark.source.offset']}`);
    }
    // One execution (process id) per batch.
    const pidsPerBatch = new Map<string, Set<string>>();
    for (const r of got) pidsPerBatch.set(r.headers['tidemark.batch']!, (pidsPerBatch.get(r.headers['tidemark.batch']!) ?? new Set()).add(r.value!.split(':')[2]!));
    expect([...pidsPerBatch.keys()].sort()).toEqual(['1', '2', '3', '4', '5', '6']);
    expect([...pidsPerBatch.values()].every((pids) => pids.size === 1)).toBe(true);

    const all = await readTopic(brokers(), topic, 'read_uncommitted');
    if (name.startsWith('delivered:kafka')) {
      // The crashed process had committed its batch; the restarted one skipped it: nothing aborted, and the batch is the first process's.
      expect(all).toHaveLength(2 * SIZE);
      const crashedBatch = crashEnv.TIDEMARK_CRASH_AT!.split(':')[2]!;
      expect([...pidsPerBatch.get(crashedBatch)!]).toEqual([String(firstPid)]);
    }
    if (name.startsWith('in the middle')) {
      // The dead process's open transaction had records on the broker; the successor's producer aborted them.
      expect(all.length).toBeGreaterThan(2 * SIZE);
      expect(all.filter((r) => r.headers['tidemark.batch'] === '3' && r.value!.endsWith(`:${firstPid}`)).length).toBeGreaterThan(0);
    }
  });
});
