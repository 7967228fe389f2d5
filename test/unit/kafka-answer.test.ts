// What a fetched kafkajs batch becomes for the partition buffer (src/kafka/consumer.ts toAnswer):
// one SourceRecord per visible message, offsets checked, headers as their last values.
import type { KafkaMessage } from 'kafkajs';
import { toAnswer } from '../../src/kafka/consumer';
import type { FetchedBatch } from '../../src/kafka/fetch-hook';

function batch(messages: Array<Partial<KafkaMessage> & { offset: string }>): FetchedBatch {
  const full = messages.map((m) => ({ key: null, value: Buffer.from('v'), timestamp: '1700000000000', attributes: 0, headers: {}, ...m }) as KafkaMessage);
  return {
    topic: 't', partition: 3, fetchedOffset: messages[0]?.offset ?? '0', highWatermark: '100',
    messagesWithinOffset: full, rawMessages: full, messages: full, lastOffset: () => messages[messages.length - 1]!.offset,
  };
}

describe('a fetched batch as the partition buffer answer', () => {
  it('gives one record per message with numbers for offsets and timestamps, and no headers when there are none', () => {
    const answer = toAnswer(batch([{ offset: '7' }, { offset: '9', key: Buffer.from('k') }]));
    expect(answer).toMatchObject({ topic: 't', partition: 3, fetchedOffset: 7, rawCount: 2, end: 10 });
    expect(answer.records).toEqual([
      { topic: 't', partition: 3, offset: 7, key: null, value: Buffer.from('v'), timestamp: 1_700_000_000_000, headers: undefined },
      { topic: 't', partition: 3, offset: 9, key: Buffer.from('k'), value: Buffer.from('v'), timestamp: 1_700_000_000_000, headers: undefined },
    ]);
  });

  it('keeps each header, a repeated one by its last value (as Kafka lastHeader())', () => {
    const [record] = toAnswer(batch([{ offset: '1', headers: { a: Buffer.from('x'), b: [Buffer.from('1'), Buffer.from('2')] } }])).records;
    expect(record!.headers).toEqual({ a: Buffer.from('x'), b: Buffer.from('2') });
  });

  it('refuses an offset past 2^53, naming the partition', () => {
    expect(() => toAnswer(batch([{ offset: '1' }, { offset: '9007199254740993' }]))).toThrow(/t\/3 record: offset 9007199254740993 is not a safe JavaScript integer/);
  });
});
