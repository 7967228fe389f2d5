// The kafkajs consumer of the Kafka reader: how it is configured, the partition assigner
// that gives it every partition, and what its fetched batches become for the partition
// buffer (docs/kafka-source.md).
import { AssignerProtocol, type Consumer, type Kafka, type KafkaMessage, type PartitionAssigner } from 'kafkajs';
import type { SourceRecord } from '../contracts';
import { toOffset } from './errors';
import { installFetchDecoder } from './fetch-decoder';
import type { FetchedBatch } from './fetch-hook';
import type { ConsumerAction, FetchedAnswer } from './partition-buffer';
import { installLongHook } from './long-hook';
import { installVarLongHook } from './varlong-hook';

export interface ConsumerTuning {
  /** Group session timeout (default 10 s; the broker's minimum is usually 6 s). */
  readonly sessionTimeout?: number;
  readonly rebalanceTimeout?: number;
  /** Default 1 s. */
  readonly heartbeatInterval?: number;
  /** Bytes per partition per fetch (default 2 MiB: above the broker's default largest batch, so one batch always fits). */
  readonly maxBytesPerPartition?: number;
  /** Bytes per fetch response (default 50 MiB, the Java consumer's fetch.max.bytes). */
  readonly maxBytes?: number;
  /** How long the broker may hold a fetch that finds nothing new, and how long kafkajs sleeps when every partition is paused (default 100 ms). */
  readonly maxWaitTimeInMs?: number;
}

const ASSIGNER = 'TidemarkEveryPartition';
/** What a buffered record counts for against the memory bound besides its key and value (its objects). */
export const RECORD_OVERHEAD = 96;

/** Gives every member all partitions of the topics it subscribed to. */
function everyPartitionAssigner(onCluster: (cluster: object) => void): PartitionAssigner {
  return ({ cluster }) => {
    onCluster(cluster);
    return {
      name: ASSIGNER,
      version: 0,
      async assign({ members }) {
        return members.map(({ memberId, memberMetadata }) => {
          const subscribed = AssignerProtocol.MemberMetadata.decode(memberMetadata)?.topics ?? [];
          const assignment: Record<string, number[]> = {};
          for (const topic of subscribed) {
            try {
              assignment[topic] = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b);
            } catch {
              // a topic without metadata (deleted meanwhile): not assigned; the plan finds out why
            }
          }
          return { memberId, memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment, userData: Buffer.alloc(0) }) };
        });
      },
      protocol({ topics }) {
        return { name: ASSIGNER, metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
      },
    };
  };
}

/** The reader's consumer: the only member of `group`, assigned every partition of what it subscribes to. */
export function createConsumer(kafka: Kafka, group: string, tuning: ConsumerTuning, readUncommitted: boolean, onCluster: (cluster: object) => void): Consumer {
  installVarLongHook();
  installLongHook();
  installFetchDecoder();
  const sessionTimeout = tuning.sessionTimeout ?? 10_000;
  return kafka.consumer({
    groupId: group,
    partitionAssigners: [everyPartitionAssigner(onCluster)],
    sessionTimeout,
    rebalanceTimeout: tuning.rebalanceTimeout ?? Math.max(sessionTimeout, 30_000),
    heartbeatInterval: tuning.heartbeatInterval ?? Math.min(1_000, Math.floor(sessionTimeout / 3)),
    maxBytesPerPartition: tuning.maxBytesPerPartition ?? 2 * 1024 * 1024,
    maxBytes: tuning.maxBytes ?? 50 * 1024 * 1024,
    // Short: kafkajs sleeps this long whenever every partition is paused (read-ahead full),
    // and a partition resumed meanwhile waits for it. The long poll still answers at once
    // when records arrive; idle, it costs ≤ 10 fetches a second.
    maxWaitTimeInMs: tuning.maxWaitTimeInMs ?? 100,
    readUncommitted,
    allowAutoTopicCreation: false,
    retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 },
  });
}

/** Applies the partition buffer's decisions to the consumer. */
export function applyActions(consumer: Consumer, actions: readonly ConsumerAction[]): void {
  for (const a of actions) {
    try {
      // Explicit partition lists: kafkajs's topic-wide pause is undone by any later per-partition pause.
      if (a.kind === 'seek') consumer.seek({ topic: a.topic, partition: a.partition, offset: String(a.offset) });
      else if (a.kind === 'pause') consumer.pause([{ topic: a.topic, partitions: [a.partition] }]);
      else consumer.resume([{ topic: a.topic, partitions: [a.partition] }]);
    } catch {
      // the consumer is between a crash and kafkajs's restart of it: the next join seeks, pauses and resumes again
    }
  }
}

function headerValues(headers: KafkaMessage['headers']): SourceRecord['headers'] {
  // for…in, not Object.keys: kafkajs hands every record a headers object, mostly empty, and
  // an array of its keys per record was garbage for nothing.
  let out: Record<string, string | Buffer | undefined> | undefined;
  for (const k in headers) {
    const v = headers[k];
    (out ??= {})[k] = Array.isArray(v) ? v[v.length - 1] : v; // a repeated header: the last value, as Kafka's lastHeader()
  }
  return out;
}

/**
 * The offset after the last record batch of the answer, from its header: records the
 * cleaner removed from the end of a batch leave its lastOffsetDelta behind, so the
 * position can pass them without waiting for a later record.
 */
function batchEnd(raw: FetchedBatch): number {
  const last = raw.rawMessages[raw.rawMessages.length - 1] as { batchContext?: { firstOffset?: string; lastOffsetDelta?: number } } | undefined;
  const ctx = last?.batchContext;
  if (!ctx || typeof ctx.firstOffset !== 'string' || typeof ctx.lastOffsetDelta !== 'number') return 0;
  const end = Number(ctx.firstOffset) + ctx.lastOffsetDelta + 1;
  return Number.isSafeInteger(end) ? end : 0;
}

/** A fetched kafkajs batch as the partition buffer's answer. */
export function toAnswer(raw: FetchedBatch): FetchedAnswer<SourceRecord> {
  const key = `${raw.topic}/${raw.partition}`;
  const fetchedOffset = toOffset(raw.fetchedOffset, `${key} fetch position`);
  if (raw.rawMessages.length === 0) return { topic: raw.topic, partition: raw.partition, fetchedOffset, rawCount: 0, records: [], end: fetchedOffset };
  const records = raw.messages.map((m): SourceRecord => {
    const offset = Number(m.offset);
    return {
      // The label is built only for a bad offset, not as a string per record.
      topic: raw.topic, partition: raw.partition, offset: Number.isSafeInteger(offset) ? offset : toOffset(m.offset, `${key} record`),
      key: m.key ?? null, value: m.value ?? null, timestamp: Number(m.timestamp), headers: headerValues(m.headers),
    };
  });
  const end = Math.max(toOffset(raw.lastOffset(), `${key} last offset`) + 1, batchEnd(raw));
  return { topic: raw.topic, partition: raw.partition, fetchedOffset, rawCount: raw.rawMessages.length, records, end };
}
