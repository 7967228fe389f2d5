// Creates the input and output topics and produces click events to the input.
//   KAFKA_BROKERS=… node scripts/run-ts.js examples/kafka-to-kafka/seed.ts [--events 100000]
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { seedTopic } from '../kafka-to-postgres/clicks';

const { values } = parseArgs({ options: { events: { type: 'string' }, from: { type: 'string' } } });
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const events = Number(values.events ?? 100_000);
const output = process.env.OUT_TOPIC ?? 'clicks-enriched';
void (async () => {
  await seedTopic(brokers, process.env.TOPIC ?? 'clicks', Number(values.from ?? 0), events);
  const admin = new Kafka({ clientId: 'tidemark-example-seed', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  if (!(await admin.listTopics()).includes(output)) await admin.createTopics({ topics: [{ topic: output, numPartitions: 4 }], waitForLeaders: true });
  await admin.disconnect();
  console.log(`${events} click events in topic ${process.env.TOPIC ?? 'clicks'}; output topic ${output} ready`);
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
