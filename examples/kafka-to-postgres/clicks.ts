// The example's data: click events (event n: user u<(n·7919) mod 1000>, page PAGES[n mod 8],
// deterministic so counts can be checked), the topic they go to, and the table (schema.sql).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { Client } from 'pg';

export const PAGES = ['/home', '/search', '/product', '/cart', '/checkout', '/help', '/about', '/blog'];
export const click = (n: number) => ({ user: `u${(n * 7919) % 1000}`, page: PAGES[n % PAGES.length]! });

export async function seedTopic(brokers: string[], topic: string, from: number, events: number): Promise<void> {
  const kafka = new Kafka({ clientId: 'tidemark-example-seed', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const existing = await admin.listTopics();
  if (!existing.includes(topic)) await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  for (let start = from; start < from + events; start += 5_000) {
    const messages = [];
    for (let n = start; n < Math.min(from + events, start + 5_000); n++) {
      const c = click(n);
      messages.push({ key: c.user, value: JSON.stringify(c) });
    }
    await producer.send({ topic, messages, acks: -1 });
  }
  await producer.disconnect();
}

export async function createTable(pgUrl: string): Promise<void> {
  const client = new Client({ connectionString: pgUrl });
  await client.connect();
  await client.query(readFileSync(join(__dirname, 'schema.sql'), 'utf8'));
  await client.end();
}
