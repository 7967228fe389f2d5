// What kafkajs does not tell: the fetch responses that come back empty.
//
// A range ends when the consumer's position reaches `until`. Usually a record at or past
// `until - 1` arrives and says so (a transaction marker or an aborted record counts: the
// batch's lastOffset() covers them). But when the last offsets before `until` hold no
// record at all (compacted away, or a marker removed by the cleaner) and nothing follows,
// the broker answers the fetch with no records, and kafkajs's runner drops that answer
// without telling eachBatch or any instrumentation event. The reader needs it
// (partition-buffer.ts, empty answers), so this module wraps the one method every fetched
// batch passes through, Runner#handleBatch, and hands each batch, empty or not, to the
// listener registered for the consumer's cluster object (which the reader learns from its
// partition assigner). Consumers without a listener are untouched.
//
// The same wrap gives those consumers read_committed as the Java consumer has it: kafkajs
// filters aborted records with a list it assumes sorted, which the broker does not sort
// (src/kafka/aborted-transactions.ts), so the batch's `messages` are computed again from
// the fetch answer's aborted transaction list, which kafkajs's Batch does not keep: a wrap
// of Broker#fetch records it by the answer's decoded records array, which becomes the
// batch's rawMessages.
//
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shapes it relies on
// and fails loudly if they change.
import Broker from 'kafkajs/src/broker';
import Runner from 'kafkajs/src/consumer/runner';
import { visibleRecords, type FetchedRecord } from './aborted-transactions';

/** The fields of kafkajs's Batch class the reader uses (the public type omits some). */
export interface FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  readonly fetchedOffset: string;
  readonly highWatermark: string;
  /** Every record of the response at or after fetchedOffset, control records and aborted ones included. */
  readonly messagesWithinOffset: ReadonlyArray<{ readonly offset: string }>;
  /** Everything decoded from the response for the partition. */
  readonly rawMessages: ReadonlyArray<import('kafkajs').KafkaMessage & FetchedRecord>;
  /** The visible records: aborted ones and control records filtered out (by this module). */
  readonly messages: ReadonlyArray<import('kafkajs').KafkaMessage>;
  lastOffset(): string;
}

type Listener = (batch: FetchedBatch) => void;

const listeners = new WeakMap<object, Listener>();
let installed = false;
type AbortedList = ReadonlyArray<{ readonly producerId: string; readonly firstOffset: string }>;
const abortedLists = new WeakMap<object, AbortedList>();
const refiltered = new WeakSet<object>();

interface RunnerInternals {
  readonly running?: boolean;
  readonly consumerGroup?: { readonly cluster?: object } | null;
}

function install(): void {
  if (installed) return;
  const proto = Runner.prototype as unknown as { handleBatch: (this: RunnerInternals, batch: unknown) => Promise<void> };
  const original = proto.handleBatch;
  if (typeof original !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/consumer/runner has no handleBatch (a different kafkajs version is installed)');
  }
  const broker = Broker.prototype as unknown as { fetch: (this: unknown, request: unknown) => Promise<unknown> };
  const fetch = broker.fetch;
  if (typeof fetch !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/broker has no fetch (a different kafkajs version is installed)');
  }
  broker.fetch = async function fetchKeepingAbortedLists(this: unknown, request: unknown): Promise<unknown> {
    const answer = await fetch.call(this, request);
    for (const topic of (answer as { responses?: Array<{ partitions?: Array<{ messages?: unknown; abortedTransactions?: AbortedList }> }> }).responses ?? []) {
      for (const p of topic.partitions ?? []) {
        if (Array.isArray(p.messages)) abortedLists.set(p.messages, p.abortedTransactions ?? []);
      }
    }
    return answer;
  };
  proto.handleBatch = function handleBatch(this: RunnerInternals, batch: unknown): Promise<void> {
    const cluster = this.consumerGroup?.cluster;
    const listener = this.running && cluster ? listeners.get(cluster) : undefined;
    if (listener) {
      const b = batch as FetchedBatch & { messages: FetchedBatch['messages'] };
      const aborted = abortedLists.get(b.rawMessages);
      if (aborted) {
        b.messages = visibleRecords(b.rawMessages, aborted, b.fetchedOffset);
        refiltered.add(b);
      }
      listener(b);
    }
    return original.call(this, batch);
  };
  installed = true;
}

/** Calls `listener` with every batch the consumer on `cluster` fetches, before kafkajs processes it. */
export function onFetchedBatches(cluster: object, listener: Listener): () => void {
  install();
  listeners.set(cluster, listener);
  return () => {
    if (listeners.get(cluster) === listener) listeners.delete(cluster);
  };
}

/** Throws unless `batch` has the shape this module relies on. */
export function checkBatchShape(batch: FetchedBatch): void {
  if (typeof batch.fetchedOffset !== 'string' || !Array.isArray(batch.rawMessages) || typeof batch.lastOffset !== 'function') {
    throw new Error('tidemark needs kafkajs 2.2.x: its fetched batches lack fetchedOffset/rawMessages (a different kafkajs version is installed)');
  }
  if (batch.rawMessages.length > 0 && !refiltered.has(batch)) {
    throw new Error('tidemark needs kafkajs 2.2.x: a fetched batch came without its fetch answer\'s aborted transaction list (a different kafkajs version is installed)');
  }
}
