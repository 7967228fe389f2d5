// What a kafkajs error means (src/kafka/errors.ts), on error chains shaped as kafkajs builds
// them: a retry or connection error wrapping the broker's answer in `cause`.
import { causes } from '../../checkpoint/errors';
import { isCoordinatorNotReady, isFenced, isMetadataLost, isTransient, isUnknownTopic, rootMessage, toOffset } from '../../src/kafka/errors';

function kafkaError(name: string, message: string, fields: { type?: string; code?: number; retriable?: boolean; cause?: unknown } = {}): Error {
  const { cause, ...rest } = fields;
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { name }, rest);
}

describe('src/kafka/errors', () => {
  it('walks the cause chain: a connection error deep inside a retry error is transient', () => {
    const inner = kafkaError('KafkaJSConnectionError', 'Connection error: ECONNREFUSED');
    const outer = kafkaError('KafkaJSNumberOfRetriesExceeded', 'retries exceeded', { cause: inner });
    expect(isTransient(outer)).toBe(true);
    expect(rootMessage(outer)).toBe('retries exceeded (Connection error: ECONNREFUSED)');
    expect(isTransient(kafkaError('KafkaJSProtocolError', 'bad request', { retriable: false }))).toBe(false);
  });

  it('an unknown topic is never transient, even when kafkajs calls it retriable', () => {
    const err = kafkaError('KafkaJSProtocolError', 'This server does not host this topic-partition', { type: 'UNKNOWN_TOPIC_OR_PARTITION', retriable: true });
    expect(isUnknownTopic(kafkaError('KafkaJSNonRetriableError', 'gave up', { cause: err }))).toBe(true);
    expect(isTransient(err)).toBe(false);
  });

  it("recognises kafkajs's lost Metadata answer: the TypeError its fetchTopicMetadata throws on null", () => {
    // The expression of kafkajs/src/admin/index.js, so the message is this Node's own.
    const metadata = null as unknown as { topicMetadata: unknown[] };
    let lost: unknown;
    try {
      void metadata.topicMetadata.length;
    } catch (err) {
      lost = err;
    }
    expect(isMetadataLost(lost)).toBe(true);
    expect(isMetadataLost(new TypeError("Cannot read properties of null (reading 'partitions')"))).toBe(false);
    expect(isMetadataLost(kafkaError('KafkaJSProtocolError', "reading 'topicMetadata'"))).toBe(false);
  });

  it('recognises a fenced producer by type or code, and a coordinator that moved', () => {
    expect(isFenced(kafkaError('KafkaJSProtocolError', 'fenced', { type: 'PRODUCER_FENCED' }))).toBe(true);
    expect(isFenced(kafkaError('KafkaJSError', 'wrapped', { cause: kafkaError('KafkaJSProtocolError', 'epoch', { code: 47 }) }))).toBe(true);
    expect(isFenced(kafkaError('KafkaJSConnectionError', 'down'))).toBe(false);
    expect(isCoordinatorNotReady(kafkaError('KafkaJSProtocolError', 'loading', { type: 'GROUP_LOAD_IN_PROGRESS' }))).toBe(true);
    expect(isCoordinatorNotReady(kafkaError('KafkaJSProtocolError', 'other', { type: 'NOT_COORDINATOR' }))).toBe(false);
  });

  it('causes() stops at a cycle and at its limit', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as Error & { cause?: unknown }).cause = b;
    expect(causes(b)).toEqual([b, a]);
    let deep: unknown = new Error('0');
    for (let i = 1; i < 50; i++) deep = new Error(String(i), { cause: deep });
    expect(causes(deep)).toHaveLength(10);
  });

  it('toOffset refuses offsets beyond 2^53', () => {
    expect(toOffset('42', 'x')).toBe(42);
    expect(() => toOffset('9007199254740993', 't/0 record')).toThrow(/t\/0 record: offset 9007199254740993 is not a safe JavaScript integer/);
  });
});
