// src/kafka/record-batch.ts builds the Kafka sink's record batches in one Buffer, in place of
// kafkajs's encoder: for any records and producer it must write the very bytes kafkajs writes
// (header, CRC-32C, every record), so the broker gets what it got before.
import * as fc from 'fast-check';
import { finishBatch, RecordBatchBuilder, type Bytes } from '../../src/kafka/record-batch';
import { propertyParams } from './params';

type Headers = Record<string, Buffer | string>;
/* eslint-disable @typescript-eslint/no-require-imports */
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as {
  RecordBatch: (o: Record<string, unknown>) => Promise<{ buffer: Buffer }>;
};
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (o: { offsetDelta: number; timestampDelta: number; key: Bytes; value: Bytes; headers: Headers }) => unknown;
/* eslint-enable @typescript-eslint/no-require-imports */

const notNull = fc.oneof(fc.string({ maxLength: 40, unit: 'grapheme' }), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)));
const bytes: fc.Arbitrary<Bytes> = fc.oneof(fc.constant(null), notNull);
const record = fc.record({
  key: bytes,
  value: bytes,
  headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), notNull, { maxKeys: 3 }),
  timestamp: fc.integer({ min: 1_500_000_000_000, max: 1_900_000_000_000 }),
});

describe('a record batch built in one Buffer', () => {
  it('is byte for byte the batch kafkajs encodes, for any records and producer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(record, { minLength: 1, maxLength: 40 }),
        fc.record({
          producerId: fc.bigInt({ min: 0n, max: 2n ** 53n }).map(String),
          producerEpoch: fc.integer({ min: 0, max: 32767 }),
          baseSequence: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
          transactional: fc.boolean(),
        }),
        fc.integer({ min: 0, max: 512 }),
        async (records, producer, capacity) => {
          const builder = new RecordBatchBuilder(capacity); // small capacities make it grow
          for (const r of records) builder.append(r.key, r.value, Object.entries(r.headers), r.timestamp);
          const ours = finishBatch(builder.seal(), producer);

          const first = records[0]!.timestamp;
          const theirs = await RecordBatch({
            records: records.map((r, i) => Record({ offsetDelta: i, timestampDelta: r.timestamp - first, key: r.key, value: r.value, headers: r.headers })),
            firstTimestamp: first,
            maxTimestamp: Math.max(...records.map((r) => r.timestamp)),
            producerId: producer.producerId,
            producerEpoch: producer.producerEpoch,
            firstSequence: producer.baseSequence,
            transactional: producer.transactional,
            lastOffsetDelta: records.length - 1,
          });
          expect(ours.toString('hex')).toBe(theirs.buffer.toString('hex'));
        },
      ),
      propertyParams(300),
    );
  });
});
