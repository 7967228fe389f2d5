// The Kafka sink in the crash torture: the torture job (test/crash/torture-job.ts) also
// produces every output to a topic through the Kafka sink, while the driver SIGKILLs it at
// random moments (inside Kafka transactions too) and at every protocol point, the sink's
// own included. The file sink is checked by the driver (nothing lost, nothing doubled, one
// execution per batch); a read_committed consumer of the topic must then see exactly the
// same outputs, execution ids and all.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedProducer, fileSinkKeys, outputKey, printReport, runTorture } from '../crash/torture';
import { brokers, closeClients, createTopic, readTopic, uniqueTopic } from '../support/kafka';

afterAll(closeClients);

it('survives 40 SIGKILLs: a read_committed consumer sees exactly what the file sink holds', async () => {
  const topic = uniqueTopic('torture-sink');
  await createTopic(topic, 4);
  const dir = join(tmpdir(), `tidemark-torture-kafka-sink-${process.pid}`);
  const report = await runTorture({
    kills: 40, dir, producer: (d) => embeddedProducer(d),
    env: { TORTURE_KAFKA_SINK_TOPIC: topic, KAFKA_BROKERS: brokers().join(',') },
    extraSeamPoints: ['delivering:kafka', 'delivered:kafka', 'delivered:kafka'],
  });
  console.log(printReport(report, join(tmpdir(), `tidemark-torture-kafka-sink-${process.pid}.json`)));
  expect({ seed: report.seed, lost: report.lost, duplicated: report.duplicated, mixed: report.mixedExecutions, outOfOrder: report.outOfOrder })
    .toEqual({ seed: report.seed, lost: 0, duplicated: 0, mixed: 0, outOfOrder: 0 });
  expect(report.outputsVerified).toBe(report.produced);

  const expected = fileSinkKeys(dir);
  const got = (await readTopic(brokers(), topic)).map((r) => outputKey(JSON.parse(r.value!) as { p: number; o: number; v: string; execution: string })).sort();
  expect(got.length).toBe(expected.length);
  expect(got).toEqual(expected);
}, 900_000);
