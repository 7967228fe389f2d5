// Creates the example's table (schema.sql) and topic, and produces click events to it.
//   KAFKA_BROKERS=… PG_URL=… node scripts/run-ts.js examples/kafka-to-postgres/seed.ts [--events 100000] [--from 0]
import { parseArgs } from 'node:util';
import { createTable, seedTopic } from './clicks';

const { values } = parseArgs({ options: { events: { type: 'string' }, from: { type: 'string' } } });
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const events = Number(values.events ?? 100_000);
void (async () => {
  await createTable(process.env.PG_URL ?? 'postgresql://localhost/tidemark');
  await seedTopic(brokers, process.env.TOPIC ?? 'clicks', Number(values.from ?? 0), events);
  console.log(`table user_clicks ready; ${events} click events in topic ${process.env.TOPIC ?? 'clicks'}`);
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
