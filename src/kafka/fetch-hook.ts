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
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shapes it relies on
// and fails loudly if they change.
import Runner from 'kafkajs/src/consumer/runner';

/** The fields of kafkajs's Batch class the reader uses (the public type omits some). */
export interface FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  readonly fetchedOffset: string;
  readonly highWatermark: string;
  /** Every record of the response at or after fetchedOffset, control records and aborted ones included. */
  readonly messagesWithinOffset: ReadonlyArray<{ readonly offset: string }>;
  /** Everything decoded from the response for the partition. */
  readonly rawMessages: ReadonlyArray<{ readonly offset: string }>;
  /** The visible records: aborted ones and control records filtered out. */
  readonly messages: ReadonlyArray<import('kafkajs').KafkaMessage>;
  lastOffset(): string;
}

type Listener = (batch: FetchedBatch) => void;

const listeners = new WeakMap<object, Listener>();
let installed = false;

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
  proto.handleBatch = function handleBatch(this: RunnerInternals, batch: unknown): Promise<void> {
    const cluster = this.consumerGroup?.cluster;
    const listener = this.running && cluster ? listeners.get(cluster) : undefined;
    if (listener) listener(batch as FetchedBatch);
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
}
