// A compacted topic: offsets removed by the log cleaner leave gaps, and a range may end
// on an offset that no longer holds a record. The read must still end there, exactly.
import { join } from 'node:path';
import { closeClients, createTopic, kafkaTool, bootstrap, produce, rawRead, runKafkaJob, topicOffsets, uniqueTopic, until } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('kafkaSource on a compacted topic', () => {
  const root = tempDir();

  it('reads exactly the records the cleaner left, ranges ending inside the gaps', async () => {
    // Let the cleaner look for work every second instead of every 15 (a dynamic broker setting).
    await kafkaTool('configs', ['--bootstrap-server', bootstrap(), '--entity-type', 'brokers', '--entity-default', '--alter', '--add-config', 'log.cleaner.backoff.ms=1000']);
    const topic = uniqueTopic('compacted');
    await createTopic(topic, 1, {
      'cleanup.policy': 'compact', 'segment.ms': '100', 'min.cleanable.dirty.ratio': '0.01', 'min.compaction.lag.ms': '0', 'delete.retention.ms': '100',
    });
    const rounds = 8;
    for (let r = 0; r < rounds; r++) {
      // Each round rewrites every key; a round starts a new segment (segment.ms), so older rounds become cleanable.
      await produce(topic, Array.from({ length: 20 }, (_, k) => ({ key: `k${k}`, value: `r${r}-k${k}`, partition: 0 })));
      await sleep(250);
    }
    await produce(topic, [{ key: 'last', value: 'last', partition: 0 }]);
    const end = (await topicOffsets(topic)).get(0)!.high;
    expect(end).toBe(rounds * 20 + 1);

    // Wait until the cleaner has removed records and the log is stable (two reads 2 s apart agree).
    let before: string[] = [];
    await until('the log cleaner to compact the topic', async () => {
      const a = await rawRead(topic);
      if (a.length >= end) return false;
      await sleep(2_000);
      const b = await rawRead(topic);
      before = b;
      return JSON.stringify(a) === JSON.stringify(b);
    }, 120_000, 500);
    expect(before.length).toBeLessThan(end);

    const run = await runKafkaJob(join(root, 'cp'), { topics: [topic], groupId: `${topic}-job` }, { once: true }, { batch: { maxRecordsPerPartition: 7 } });
    const got = run.records.flat().map((r) => `${r.partition}@${r.offset}=${r.value!.toString()}`);
    expect(got).toEqual(before);
    // Ranges: contiguous from 0 to the end, 7 offsets each (whatever the records), some with no record left at all.
    const ranges = run.batches.map((b) => b.ranges[0]!);
    expect(ranges.map((r) => r.until - r.from).every((n) => n === 7 || ranges[ranges.length - 1]!.until === end)).toBe(true);
    ranges.forEach((r, i) => expect(r.from).toBe(i === 0 ? 0 : ranges[i - 1]!.until));
    expect(ranges[ranges.length - 1]!.until).toBe(end);
    expect(run.records.some((rs) => rs.length === 0)).toBe(true);
    // A range whose last offset was compacted away still ended: some range's until-1 holds no record.
    const offsets = new Set(run.records.flat().map((r) => r.offset));
    expect(ranges.some((r) => !offsets.has(r.until - 1))).toBe(true);
    // The cleaner left every key's last value.
    for (let k = 0; k < 20; k++) expect(got).toContain(`0@${(rounds - 1) * 20 + k}=r${rounds - 1}-k${k}`);
    expect(await rawRead(topic)).toEqual(before);
  });
});
