// A record batch damaged on the broker's disk (one byte of a compressed batch flipped in its
// log segment), read by a real job: it stops with SourceCorruptError (exit 16) naming the
// partition and the batch's offset, nothing of the batch is delivered, and the next run meets
// it again; `tidemark reset` past it is the way on. kafkajs does not check a batch's CRC, and
// its LZ4 and Snappy decompressors could spin for minutes on such a payload.
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { defineJob, Engine, kafkaSource, memorySink, type SourceRecord } from 'tidemark';
import { registerKafkaCodecs } from '../../src/kafka/codecs';
import { tidemark, write } from '../support/cli';
import { waitForLeaders } from '../support/kafka';
import { checkRangeFiles, startDaemon, type GroupRun } from '../support/group';
import { ownBrokerForSuite, type OwnBroker } from '../support/kafka-broker';

/** The record batches of a log segment: where each starts and ends, and its first offset. */
function batchesOf(segment: string): Array<{ start: number; end: number; firstOffset: number }> {
  const buf = readFileSync(segment);
  const out: Array<{ start: number; end: number; firstOffset: number }> = [];
  for (let at = 0; at + 12 <= buf.length;) {
    const end = at + 12 + buf.readInt32BE(at + 8);
    out.push({ start: at, end, firstOffset: Number(buf.readBigInt64BE(at)) });
    at = end;
  }
  return out;
}

/**
 * Writes `topic` (one partition): offsets 0–9 plain, 10–59 in one LZ4 batch, 60–69 plain; then
 * flips one byte in the middle of the LZ4 payload, in the segment the broker serves fetches from.
 */
async function damagedTopic(broker: OwnBroker, topic: string): Promise<void> {
  registerKafkaCodecs();
  const kafka = new Kafka({ clientId: 'damaged-test', brokers: [broker.address], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  await waitForLeaders(admin, topic, 1);
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const send = (from: number, n: number, compression: CompressionTypes): Promise<unknown> => producer.send({
    topic, acks: -1, compression, messages: Array.from({ length: n }, (_, i) => ({ value: `record ${from + i} ${'x'.repeat(100)}`, partition: 0 })),
  });
  await send(0, 10, CompressionTypes.None);
  await send(10, 50, CompressionTypes.LZ4);
  await send(60, 10, CompressionTypes.None);
  await producer.disconnect();

  const segment = join(broker.dir, 'data', `${topic}-0`, '00000000000000000000.log');
  const damaged = batchesOf(segment).find((b) => b.firstOffset === 10)!;
  const at = damaged.start + 61 + Math.floor((damaged.end - damaged.start - 61) / 2);
  const fd = openSync(segment, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, at);
  byte.writeUInt8(byte.readUInt8(0) ^ 0xff, 0);
  writeSync(fd, byte, 0, 1, at);
  closeSync(fd);
}

describe('a record batch damaged on the broker', () => {
  const { root, broker } = ownBrokerForSuite();

  it('stops the job with SourceCorruptError (exit 16) naming it, delivers none of it, and reset past it goes on', async () => {
    const topic = 'damaged';
    await damagedTopic(broker, topic);
    const message = `${topic}/0: the record batch at offset 10 fails its CRC-32C check`;
    const sink = memorySink<number>();
    const job = (): Engine<number> => new Engine(defineJob({
      name: 'damaged', source: kafkaSource({ brokers: [broker.address], topics: [topic], groupId: 'damaged-job' }), sinks: [sink],
      transform: (records: SourceRecord[]) => records.map((r) => r.offset), batch: { maxWaitMs: 0 },
    }), { checkpointDir: join(root, 'cp') });
    await expect(job().run({ once: true })).rejects.toMatchObject({ code: 'TIDEMARK_SOURCE_CORRUPT', exitCode: 16, message: expect.stringContaining(message) });
    // Whatever was delivered precedes the damaged batch: nothing of it, nothing after it.
    const first = sink.all();
    expect(first).toEqual(Array.from({ length: first.length }, (_, i) => i));
    expect(first.length).toBeLessThanOrEqual(10);
    // The broker's copy is damaged: the next run meets it again.
    await expect(job().run({ once: true })).rejects.toMatchObject({ code: 'TIDEMARK_SOURCE_CORRUPT' });

    // The daemon: one message naming the cause and the way on, exit 16, no stack trace.
    const jobFile = write(join(root, 'job', 'job.ts'), `import { defineJob, kafkaSource, memorySink } from 'tidemark';
export default defineJob({
  name: 'damaged',
  source: kafkaSource({ brokers: ['${broker.address}'], topics: ['${topic}'], groupId: 'damaged-cli' }),
  sinks: [memorySink()],
  transform: (records) => records.map((r) => r.offset),
});
`);
    const r = await tidemark(['run', jobFile, '--checkpoint', join(root, 'job', 'cp'), '--once']);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 16, stderr: expect.stringContaining(message) });
    expect(r.stderr).toContain('tidemark reset <checkpoint> --to <offsets.json> --discard-in-flight');
    expect(r.stderr).not.toMatch(/\n\s+at /);

    // The deliberate repair: the position moved past the damaged batch; the run goes on from there.
    const offsets = write(join(root, 'past-damage.json'), JSON.stringify({ [`${topic}/0`]: 60 }));
    const reset = await tidemark(['reset', join(root, 'cp'), '--to', offsets, '--discard-in-flight', '--yes']);
    expect({ code: reset.code, stderr: reset.stderr }).toEqual({ code: 0, stderr: '' });
    await job().run({ once: true });
    const all = sink.all();
    expect(all.slice(first.length)).toEqual(Array.from({ length: 10 }, (_, i) => 60 + i));
  });

  it('stops a group-mode daemon the same way: exit 16, the message, nothing of the batch delivered', async () => {
    const topic = 'damaged-group';
    await damagedTopic(broker, topic);
    const run: GroupRun = { dir: join(root, 'group'), topic, brokers: broker.address, env: { GROUP_ID: 'damaged-group' } };
    const daemon = startDaemon(run, 0);
    const { code } = await daemon.exited;
    expect({ code, stderr: daemon.stderr() }).toMatchObject({ code: 16, stderr: expect.stringContaining(`${topic}/0: the record batch at offset 10 fails its CRC-32C check`) });
    const check = checkRangeFiles(run.dir, new Map([[0, Array.from({ length: 70 }, (_, i) => `record ${i} ${'x'.repeat(100)}`)]]));
    expect(check.found).toBeLessThanOrEqual(10);
    expect(check.duplicated).toBe(0);
  });
});
