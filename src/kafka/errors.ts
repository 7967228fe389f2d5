// What a kafkajs error means to tidemark, for the source and the sink alike. kafkajs wraps
// the broker's answer (a KafkaJSProtocolError with a `type`) in retry and connection errors
// (`cause`), so every question walks the whole chain.
import { causes, type TidemarkError } from '../../checkpoint/errors';
import { AuthenticationError, NotAuthorizedError, TlsError } from '../errors';
import { tlsFailure } from '../tls-failure';
import { coordinatorRefusal } from './coordinator-refusals';

/** The fields of kafkajs's errors the questions below read. */
interface KafkaJsErrorShape {
  readonly name?: string;
  readonly type?: string;
  readonly code?: number;
  readonly retriable?: boolean;
  readonly message?: string;
}

const chain = (err: unknown): KafkaJsErrorShape[] => causes(err) as KafkaJsErrorShape[];

const TRANSIENT_NAMES = new Set([
  'KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSRequestTimeoutError', 'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError', 'KafkaJSLockTimeout', 'KafkaJSGroupCoordinatorNotFound', 'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded', 'KafkaJSTimeout',
]);

/** A topic the broker does not know (deleted, or never created). */
export function isUnknownTopic(err: unknown): boolean {
  return chain(err).some((e) => e.type === 'UNKNOWN_TOPIC_OR_PARTITION' || e.type === 'UNKNOWN_TOPIC_ID');
}

/**
 * kafkajs 2.2.4 lost the broker's answer: its broker pool swallows every broker's failure of a
 * Metadata request and returns null, and admin.fetchTopicMetadata then throws this TypeError
 * (seen when the topic asked about was being deleted).
 */
export function isMetadataLost(err: unknown): boolean {
  return err instanceof TypeError && err.message.includes("reading 'topicMetadata'");
}

/** Errors worth retrying: the broker is down, restarting, or moving leadership. */
export function isTransient(err: unknown): boolean {
  if (isUnknownTopic(err)) return false;
  return chain(err).some((e) => TRANSIENT_NAMES.has(e.name ?? '') || (e.name === 'KafkaJSProtocolError' && e.retriable === true));
}

/** The broker's refusals for want of an ACL, by the kind of resource the ACL is on. */
const MISSING_ACL: Readonly<Record<string, string>> = {
  TOPIC_AUTHORIZATION_FAILED: 'no ACL lets this principal do it on the topic (TOPIC_AUTHORIZATION_FAILED)',
  GROUP_AUTHORIZATION_FAILED: 'no ACL lets this principal do it on the consumer group (GROUP_AUTHORIZATION_FAILED)',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'no ACL lets this principal use the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED)',
  // The usual cause: an idempotent producer's InitProducerId, which Kafka allows a principal with Write on some topic (KIP-679).
  CLUSTER_AUTHORIZATION_FAILED: 'no ACL lets this principal do it on the cluster (CLUSTER_AUTHORIZATION_FAILED); a producer is allowed it by Write on the topics it writes, or IdempotentWrite on the cluster',
};

/**
 * Kafka refused tidemark for good — the credentials (SASL), the TLS handshake, or an ACL — as
 * the typed error that says so (`what`: the operation and the resources it needs); undefined
 * for anything else. kafkajs reports a TLS failure as a retriable connection error and a
 * missing ACL as a bare protocol error: retrying cures neither, so callers stop on these.
 * `coordinatorKeys`: the groups and transactional ids `what` looks coordinators up for, whose
 * refusal kafkajs loses (coordinator-refusals.ts).
 */
export function accessFailure(err: unknown, brokers: readonly string[], what: string, coordinatorKeys: readonly string[] = []): TidemarkError | undefined {
  const server = `Kafka ${brokers.join(',')}`;
  const lost = chain(err).some((e) => e.name === 'KafkaJSGroupCoordinatorNotFound') ? coordinatorRefusal(coordinatorKeys) : undefined;
  const list = [...chain(err), ...chain(lost)];
  const sasl = list.find((e) => e.name === 'KafkaJSSASLAuthenticationError' || e.type === 'SASL_AUTHENTICATION_FAILED');
  if (sasl) return new AuthenticationError(server, `${sasl.message ?? 'SASL authentication failed'} (${what})`, { cause: err });
  const tls = tlsFailure(err);
  if (tls) return new TlsError(server, tls, { cause: err });
  const acl = list.find((e) => e.type !== undefined && e.type in MISSING_ACL);
  if (acl) return new NotAuthorizedError(server, what, MISSING_ACL[acl.type!]!, { cause: err });
  return undefined;
}

/** A newer producer with the same transactionalId exists (or this transaction outlived its timeout). */
export function isFenced(err: unknown): boolean {
  return chain(err).some((e) => e.type === 'INVALID_PRODUCER_EPOCH' || e.type === 'PRODUCER_FENCED' || e.code === 47 || e.code === 90);
}

/**
 * kafkajs 2.2.4 means to retry TxnOffsetCommit when the group coordinator moved or is still
 * loading, but its lists name the errors `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE` and
 * `COORDINATOR_LOAD_IN_PROGRESS`, while its own error types are `NOT_COORDINATOR_FOR_GROUP`,
 * `GROUP_COORDINATOR_NOT_AVAILABLE` and `GROUP_LOAD_IN_PROGRESS`: none is retried (nor by
 * its admin's OffsetFetch). It happens on the first use of a fresh broker (__consumer_offsets
 * just created) and after a coordinator moves.
 */
const COORDINATOR_NOT_READY = new Set(['NOT_COORDINATOR_FOR_GROUP', 'GROUP_COORDINATOR_NOT_AVAILABLE', 'GROUP_LOAD_IN_PROGRESS']);

/** The group coordinator moved or is loading: sending the request again finds it. */
export function isCoordinatorNotReady(err: unknown): boolean {
  return chain(err).some((e) => COORDINATOR_NOT_READY.has(e.type ?? ''));
}

/** The outermost message, with the innermost cause's when it adds something. */
export function rootMessage(err: unknown): string {
  const list = chain(err);
  const last = list[list.length - 1];
  const first = list[0];
  if (!first) return String(err);
  return last && last !== first && last.message && !first.message?.includes(last.message) ? `${first.message} (${last.message})` : String(first.message);
}

/** A Kafka offset (a string from kafkajs) as a JavaScript number, or a clear error. */
export function toOffset(value: string | number, what: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`${what}: offset ${String(value)} is not a safe JavaScript integer (tidemark handles offsets below 2^53)`);
  return n;
}

/** The waits between new consumers when kafkajs stopped one for good on a transient error (the reader's and the membership's). */
export const CONSUMER_RESTART_BACKOFF = { baseMs: 250, maxMs: 2_000 } as const;
