// What a kafkajs error means (src/kafka/errors.ts), on error chains shaped as kafkajs builds
// them: a retry or connection error wrapping the broker's answer in `cause`.
import { causes } from '../../checkpoint/errors';
import { accessFailure, isCoordinatorNotReady, isFenced, isMetadataLost, isTransient, isUnknownTopic, rootMessage, toOffset } from '../../src/kafka/errors';

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

  it("names Kafka's refusals — credentials, TLS, ACLs — with their codes, and nothing else", () => {
    const brokers = ['b:9093'];
    const retried = (cause: Error): Error => kafkaError('KafkaJSNumberOfRetriesExceeded', `retries: ${cause.message}`, { cause });
    const sasl = accessFailure(kafkaError('KafkaJSSASLAuthenticationError', 'SASL SCRAM SHA512 authentication failed: invalid credentials'), brokers, 'listing topics');
    expect(sasl).toMatchObject({ code: 'TIDEMARK_AUTH_FAILED', exitCode: 13, message: expect.stringContaining('Kafka b:9093 refused tidemark\'s credentials: SASL SCRAM SHA512') });
    const tls = (code: string): unknown => accessFailure(retried(Object.assign(kafkaError('KafkaJSConnectionError', 'Connection error: x'), { code })), brokers, 'x');
    expect(tls('SELF_SIGNED_CERT_IN_CHAIN')).toMatchObject({ code: 'TIDEMARK_TLS_FAILED', exitCode: 14, message: expect.stringContaining('not trusted') });
    expect(tls('UNABLE_TO_VERIFY_LEAF_SIGNATURE')).toMatchObject({ code: 'TIDEMARK_TLS_FAILED', message: expect.stringContaining('give the CA') });
    expect(tls('ERR_TLS_CERT_ALTNAME_INVALID')).toMatchObject({ message: expect.stringContaining('does not name the host') });
    expect(tls('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE')).toMatchObject({ message: expect.stringContaining('client certificate') });
    expect(tls('CERT_HAS_EXPIRED')).toMatchObject({ message: expect.stringContaining('not valid now') });
    expect(tls('ECONNREFUSED')).toBeUndefined();
    for (const [type, words] of [['TOPIC_AUTHORIZATION_FAILED', 'on the topic'], ['GROUP_AUTHORIZATION_FAILED', 'consumer group'], ['TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'transactional id'],
      ['CLUSTER_AUTHORIZATION_FAILED', 'a producer is allowed it by Write on the topics it writes, or IdempotentWrite on the cluster']] as const) {
      const err = accessFailure(retried(kafkaError('KafkaJSProtocolError', 'Not authorized', { type, retriable: false })), brokers, 'writing batch 3');
      expect(err).toMatchObject({ code: 'TIDEMARK_NOT_AUTHORIZED', exitCode: 15, message: expect.stringContaining(`did not authorize writing batch 3: no ACL lets this principal`) });
      expect(err!.message).toContain(words);
    }
    expect(accessFailure(retried(kafkaError('KafkaJSConnectionError', 'Connection error: ECONNREFUSED')), brokers, 'x')).toBeUndefined();
  });

  it('toOffset refuses offsets beyond 2^53', () => {
    expect(toOffset('42', 'x')).toBe(42);
    expect(() => toOffset('9007199254740993', 't/0 record')).toThrow(/t\/0 record: offset 9007199254740993 is not a safe JavaScript integer/);
  });
});
