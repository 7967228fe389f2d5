// The Kafka sink's records reach the broker as batches built by record-batch.ts, through
// kafkajs's own producer for everything else: the transaction (AddPartitionsToTxn, EndTxn,
// TxnOffsetCommit), the leaders, retries and the answer's errors stay kafkajs's.
//
// The sink hands kafkajs one placeholder message per partition, carrying a built batch
// (`batchMessage`). This module wraps the one method every produce passes through,
// Broker#produce: a request whose messages are all placeholders is encoded here — Produce
// v3…v8 share one layout — from the built batches, instead of by kafkajs message by message.
// Requests of ordinary messages are untouched.
//
// kafkajs counts a partition's sequence numbers by messages, which is one per placeholder
// here, so this module keeps the sequence of the producers it serves: per producer id and
// epoch, per partition, the next sequence, advanced by each batch's record count when the
// broker accepted it and left as it was when the request failed (as kafkajs does: a resend
// repeats the sequence, which the broker answers as a duplicate). A new epoch
// (InitProducerId: a restart, a fencing) starts at 0, as the broker expects.
//
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shapes it relies on.
import Broker from 'kafkajs/src/broker';
import apiKeys from 'kafkajs/src/protocol/requests/apiKeys';
import { requests } from 'kafkajs/src/protocol/requests';
import { finishBatch, type SealedBatch } from './record-batch';

/** A kafkajs message standing for a built batch of one partition. */
export interface BatchMessage {
  readonly partition: number;
  readonly key: null;
  readonly value: null;
}

interface ProduceArgs {
  readonly topicData: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<{ readonly partition: number; readonly messages: readonly unknown[] }> }>;
  readonly transactionalId?: string;
  readonly producerId: unknown;
  readonly producerEpoch: number;
  readonly acks?: number;
  readonly timeout?: number;
  readonly compression?: number;
}

interface ProduceRequest {
  readonly apiVersion: number;
  encode: () => Promise<unknown>;
}

type ProduceLookup = (args: Record<string, unknown>) => { request: ProduceRequest; response: unknown };

interface BrokerInternals {
  lookupRequest(apiKey: number, definition: unknown): ProduceLookup;
}

const batches = new WeakMap<object, SealedBatch>();
/** producer id → its epoch and each partition's next sequence (`topic\0partition`). */
const sequences = new Map<string, { epoch: number; next: Map<string, number> }>();
let installed = false;
let sendRequest: symbol | undefined;

/** The placeholder of `batch` for kafkajs's sendBatch. */
export function batchMessage(partition: number, batch: SealedBatch): BatchMessage {
  install();
  const m: BatchMessage = { partition, key: null, value: null };
  batches.set(m, batch);
  return m;
}

function sequencesOf(producerId: string, epoch: number): Map<string, number> {
  let s = sequences.get(producerId);
  if (!s || s.epoch !== epoch) sequences.set(producerId, (s = { epoch, next: new Map() }));
  return s.next;
}

/** A Kafka STRING or NULLABLE_STRING (int16 length, -1: null). */
function kafkaString(s: string | null): Buffer {
  if (s === null) return Buffer.from([0xff, 0xff]);
  const b = Buffer.allocUnsafe(2 + Buffer.byteLength(s));
  b.writeInt16BE(b.length - 2, 0);
  b.write(s, 2, 'utf8');
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

/** The Produce request's body (v3…v8): transactional id, acks, timeout, then per topic and partition one batch. */
function encodeProduce(args: ProduceArgs, producerId: string, next: Map<string, number>): Buffer {
  const head = Buffer.allocUnsafe(6);
  head.writeInt16BE(args.acks ?? -1, 0);
  head.writeInt32BE(args.timeout ?? 30_000, 2);
  const parts: Buffer[] = [kafkaString(args.transactionalId ?? null), head, int32(args.topicData.length)];
  for (const { topic, partitions } of args.topicData) {
    parts.push(kafkaString(topic), int32(partitions.length));
    for (const { partition, messages } of partitions) {
      const batch = batches.get(messages[0] as object)!;
      const key = `${topic}\0${partition}`;
      const bytes = finishBatch(batch, {
        producerId, producerEpoch: args.producerEpoch, baseSequence: next.get(key) ?? 0, transactional: args.transactionalId !== undefined,
      });
      parts.push(int32(partition), int32(bytes.length), bytes);
    }
  }
  return Buffer.concat(parts);
}

function install(): void {
  if (installed) return;
  const proto = Broker.prototype as unknown as { produce: (this: BrokerInternals, args: ProduceArgs) => Promise<unknown> };
  const original = proto.produce;
  sendRequest = Object.getOwnPropertySymbols(Broker.prototype).find((s) => s.description === 'private:Broker:sendRequest');
  if (typeof original !== 'function' || sendRequest === undefined || typeof requests.Produce !== 'object' || typeof apiKeys.Produce !== 'number') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/broker has no produce or sendRequest (a different kafkajs version is installed)');
  }
  const send = sendRequest;
  proto.produce = async function produce(this: BrokerInternals, args: ProduceArgs): Promise<unknown> {
    const entries = args.topicData.flatMap((t) => t.partitions);
    const built = entries.filter((p) => p.messages.some((m) => batches.has(m as object)));
    if (built.length === 0) return original.call(this, args);
    if (built.length !== entries.length || entries.some((p) => p.messages.length !== 1)) {
      throw new Error('tidemark: a produce request mixes built batches with other messages, or holds two batches of one partition');
    }
    const { request, response } = this.lookupRequest(apiKeys.Produce, requests.Produce)({
      acks: args.acks, timeout: args.timeout, compression: args.compression, topicData: [],
      transactionalId: args.transactionalId, producerId: args.producerId, producerEpoch: args.producerEpoch,
    });
    if (request.apiVersion < 3 || request.apiVersion > 8) {
      throw new Error(`tidemark: the broker speaks Produce v${request.apiVersion}; the Kafka sink writes record batches with v3…v8`);
    }
    const producerId = String(args.producerId);
    const next = sequencesOf(producerId, args.producerEpoch);
    const body = encodeProduce(args, producerId, next);
    // kafkajs's request framing takes an Encoder: it reads `buf` (to check) and `buffer`.
    request.encode = () => Promise.resolve({ buf: body, buffer: body });
    const answer = await (this as unknown as Record<symbol, (r: unknown) => Promise<unknown>>)[send]!({ request, response });
    for (const { topic, partitions } of args.topicData) {
      for (const { partition, messages } of partitions) {
        const key = `${topic}\0${partition}`;
        next.set(key, (next.get(key) ?? 0) + batches.get(messages[0] as object)!.count);
      }
    }
    return answer;
  };
  installed = true;
}
