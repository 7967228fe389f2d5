// Kafka topic → enriched records → another Kafka topic, exactly once for read_committed
// consumers. Each batch goes out in one Kafka transaction that also records the batch id
// (offset metadata of the sink's ledger group), so a batch delivered again after a crash is
// skipped; the transactional id is stable per job and sink, so an older process still
// alive (a zombie) is fenced. See README.md beside this file.
//
//   KAFKA_BROKERS=127.0.0.1:9092 npx tidemark run examples/kafka-to-kafka/job.ts
import { join } from 'node:path';
import { defineJob, forwardRecord, kafkaSink, kafkaSource, type KafkaMessageOut } from 'tidemark';

const data = process.env.KAFKA_TO_KAFKA_DATA ?? join(__dirname, '..', '..', 'data', 'kafka-to-kafka');
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const input = process.env.TOPIC ?? 'clicks';
const output = process.env.OUT_TOPIC ?? 'clicks-enriched';

const SECTIONS: Record<string, string> = {
  '/home': 'browse', '/search': 'browse', '/about': 'browse', '/blog': 'browse', '/help': 'support',
  '/product': 'shop', '/cart': 'shop', '/checkout': 'shop',
};

export interface EnrichedClick {
  readonly user: string;
  readonly page: string;
  readonly section: string;
  readonly at: string;
}

export default defineJob<KafkaMessageOut>({
  name: 'kafka-to-kafka',
  source: kafkaSource({ brokers, topics: [input], groupId: process.env.GROUP_ID ?? 'kafka-to-kafka', startingOffsets: 'earliest' }),
  // Enrich and forward: same key (so the same partitioning by user), new value, a header; the
  // sink adds lineage headers tidemark.source.topic/partition/offset from forwardRecord's `source`.
  transform: (records) => records.map((r) => {
    const { user, page } = JSON.parse(r.value!.toString()) as { user: string; page: string };
    const enriched: EnrichedClick = { user, page, section: SECTIONS[page] ?? 'other', at: new Date(r.timestamp).toISOString() };
    return forwardRecord(r, { value: JSON.stringify(enriched), headers: { 'content-type': 'application/json' } });
  }),
  sinks: [kafkaSink<KafkaMessageOut>({ name: 'enriched', brokers, topic: output, compression: 'lz4' })],
  batch: { maxRecordsPerPartition: 50_000, maxWaitMs: 1_000 },
  checkpoint: { dir: join(data, 'checkpoint') },
});
