// Kafka topic → per-user click counts upserted into PostgreSQL, exactly once. Each batch
// adds its counts to `user_clicks` in the same transaction as its ledger row, so a batch
// delivered again after a crash adds nothing. See README.md beside this file.
//
//   KAFKA_BROKERS=127.0.0.1:9092 PG_URL=postgresql://… npx tidemark run examples/kafka-to-postgres/job.ts
import { join } from 'node:path';
import { defineJob, kafkaSource, postgresSink } from 'tidemark';

const data = process.env.KAFKA_TO_POSTGRES_DATA ?? join(__dirname, '..', '..', 'data', 'kafka-to-postgres');
const topic = process.env.TOPIC ?? 'clicks';

export interface UserClicks {
  readonly user: string;
  readonly clicks: number;
  readonly lastPage: string;
}

export default defineJob<UserClicks>({
  name: 'kafka-to-postgres',
  source: kafkaSource({
    brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    topics: [topic],
    groupId: process.env.GROUP_ID ?? 'kafka-to-postgres',
    startingOffsets: 'earliest',
  }),
  // Clicks per user in this batch; the sink adds them to what the table holds.
  transform(records) {
    const perUser = new Map<string, { clicks: number; lastPage: string }>();
    for (const r of records) {
      const { user, page } = JSON.parse(r.value!.toString()) as { user: string; page: string };
      const u = perUser.get(user) ?? { clicks: 0, lastPage: page };
      u.clicks++;
      u.lastPage = page;
      perUser.set(user, u);
    }
    return [...perUser].map(([user, u]) => ({ user, ...u }));
  },
  sinks: [postgresSink<UserClicks>({
    name: 'user-clicks',
    connection: process.env.PG_URL ?? 'postgresql://localhost/tidemark',
    table: 'user_clicks',
    mode: 'upsert',
    columns: ['user_id', 'clicks', 'last_page'],
    key: ['user_id'],
    row: (u) => [u.user, u.clicks, u.lastPage],
    update: { clicks: 'user_clicks.clicks + EXCLUDED.clicks', last_page: 'EXCLUDED.last_page', updated_at: 'now()' },
  })],
  // A row the table refuses (say, a CHECK constraint you add) stops the job naming the batch and
  // the row; with 'dead-letter' it would go to a deadLetterSink and the rest be written.
  onSinkError: 'fail',
  batch: { maxRecordsPerPartition: 50_000, maxWaitMs: 1_000 },
  checkpoint: { dir: join(data, 'checkpoint') },
});
