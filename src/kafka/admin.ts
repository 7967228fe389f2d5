// The metadata side of the Kafka source: topics, partitions, offsets, group offsets.
// All of it goes through one kafkajs admin client, wrapped so that
//
//   - a broker that cannot be reached becomes a SourceUnreachableError after a bounded
//     retry (a short budget before the first success, a longer one once running, so a
//     broker restart is ridden out but a dead cluster still ends the run);
//   - offsets are checked to be safe JavaScript integers (kafkajs hands over strings);
//   - "latest" is the last stable offset (LSO): kafkajs's admin sends ListOffsets (v2+)
//     with isolation READ_COMMITTED, so the end of a partition never lies inside a
//     transaction that is still open (a range ending there could never complete);
//   - a deleted topic does not poison the client: kafkajs keeps every topic it was asked
//     about in its metadata requests forever, so after a deletion every later call fails
//     with UNKNOWN_TOPIC_OR_PARTITION; the client is then replaced by a fresh one;
//   - a plan's earliest and latest offsets cost one round trip, not two: kafkajs's admin
//     sends the two ListOffsets requests one after the other, and Kafka refuses a partition
//     asked twice in one request (INVALID_REQUEST, v1+), so both requests go out at once on
//     a kafkajs Cluster of our own (bench/plan-offsets.ts: 0.88 → 0.50 ms on a local broker).
import type { Admin, Kafka } from 'kafkajs';
import { isTidemarkError, type TidemarkError } from '../../checkpoint/errors';
import { SourceUnreachableError } from '../errors';
import type { Logger } from '../log';
import { retry } from '../retry';
import { accessFailure, isMetadataLost, isTransient, isUnknownTopic, rootMessage, toOffset } from './errors';

export interface ReconnectBudget {
  /** How long to keep trying before the first successful call (default 15 s). */
  readonly atStartMs: number;
  /** How long to keep trying once the source has worked (default 120 s): a broker restart fits in it. */
  readonly whileRunningMs: number;
}

export interface PartitionOffsets {
  /** Log start offset. */
  readonly earliest: number;
  /** Last stable offset (the high watermark when no transaction is open). */
  readonly latest: number;
}

/** The part of kafkajs's Cluster (src/cluster/index.js, 2.2.4) the offset look-ups use. */
interface OffsetsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findTopicPartitionMetadata(topic: string): ReadonlyArray<{ readonly partitionId: number }>;
  fetchTopicsOffset(topics: ReadonlyArray<{ topic: string; fromBeginning: boolean; partitions: ReadonlyArray<{ partition: number }> }>):
    Promise<ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<{ readonly partition: number; readonly offset: string }> }>>;
}

/**
 * A new kafkajs Cluster with the client's brokers, TLS and SASL, made by the factory every
 * kafkajs client is made by (Kafka's private `createCluster`): the admin does not expose its own.
 */
function newOffsetsCluster(kafka: Kafka): OffsetsCluster {
  const factory = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
  const create = factory && (kafka as unknown as Record<symbol, unknown>)[factory];
  if (typeof create !== 'function') throw new Error("kafkajs changed: Kafka's private createCluster is gone (src/kafka/admin.ts relies on kafkajs 2.2.4)");
  // The admin's own settings (kafkajs Kafka#admin): no topic is ever created by asking about it.
  return (create as (o: { allowAutoTopicCreation: boolean }) => OffsetsCluster)({ allowAutoTopicCreation: false });
}

export class KafkaAdmin {
  private admin: Admin | undefined;
  private connecting: Promise<Admin> | undefined;
  /** The offset look-ups' own connections (newOffsetsCluster), connected on first use, dropped with the admin. */
  private offsetsCluster: Promise<OffsetsCluster> | undefined;
  private everWorked = false;
  /** In-flight offset look-ups by topic: `offsets(…, 'latest')` and `(…, 'earliest')` of one plan share one. */
  private readonly inflight = new Map<string, Promise<Map<number, PartitionOffsets>>>();

  constructor(
    private readonly kafka: Kafka,
    private readonly brokers: readonly string[],
    private readonly budget: ReconnectBudget,
    private readonly log: Logger,
  ) {}

  /** The budget in force now: the start-up one until a call has succeeded. */
  get unreachableAfterMs(): number {
    return this.everWorked ? this.budget.whileRunningMs : this.budget.atStartMs;
  }

  private client(): Promise<Admin> {
    if (this.admin) return Promise.resolve(this.admin);
    this.connecting ??= (async () => {
      const admin = this.kafka.admin({ retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2_000 } });
      try {
        await admin.connect();
      } catch (err) {
        await admin.disconnect().catch(() => {});
        throw err;
      }
      this.admin = admin;
      return admin;
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Drops the client (after a topic deletion, or a connection failure); the next call makes a new one. */
  async renew(): Promise<void> {
    const old = this.admin;
    const oldCluster = this.offsetsCluster;
    this.admin = undefined;
    this.offsetsCluster = undefined;
    await old?.disconnect().catch(() => {});
    await oldCluster?.then((c) => c.disconnect()).catch(() => {});
  }

  private clusterForOffsets(): Promise<OffsetsCluster> {
    this.offsetsCluster ??= (async () => {
      const cluster = newOffsetsCluster(this.kafka);
      try {
        await cluster.connect();
      } catch (err) {
        await cluster.disconnect().catch(() => {});
        throw err;
      }
      return cluster;
    })();
    const pending = this.offsetsCluster;
    pending.catch(() => {
      if (this.offsetsCluster === pending) this.offsetsCluster = undefined; // the next call connects again
    });
    return pending;
  }

  /**
   * Runs `op` with retries on transient failures for at most the current budget, then
   * throws SourceUnreachableError. Other errors are passed through (refused credentials,
   * TLS and ACLs as their typed errors: `refused`).
   */
  async call<R>(what: string, op: (admin: Admin) => Promise<R>, coordinatorKeys: readonly string[] = []): Promise<R> {
    try {
      return await this.callOnce(what, op, coordinatorKeys);
    } catch (err) {
      // A topic this client once asked about may be gone (kafkajs keeps asking for it): one
      // more try on a fresh client. An unknown topic there is the broker's answer.
      if (!isUnknownTopic(err)) throw err;
      await this.renew();
      return this.callOnce(what, op, coordinatorKeys);
    }
  }

  private async callOnce<R>(what: string, op: (admin: Admin) => Promise<R>, coordinatorKeys: readonly string[] = []): Promise<R> {
    const result = await retry(async () => {
      try {
        return await op(await this.client());
      } catch (err) {
        throw this.refused(err, what, coordinatorKeys) ?? err;
      }
    }, {
      // A refusal keeps kafkajs's connection error as its cause: never retried.
      baseMs: 250, maxMs: 5_000, budgetMs: this.unreachableAfterMs, retryable: (err) => !isTidemarkError(err) && isTransient(err),
      onRetry: async (err, attempt, wait) => {
        this.log.warn({ err: rootMessage(err), attempt, what }, `Kafka not reachable (${what}); retrying in ${wait} ms`);
        await this.renew();
      },
      giveUp: (err, attempt, elapsed) => new SourceUnreachableError(
        `Kafka brokers ${this.brokers.join(',')} unreachable (${what}): ${rootMessage(err)}; gave up after ${attempt} attempts over ${Math.round(elapsed / 1000)} s`,
        { cause: err }),
    });
    this.everWorked = true;
    return result;
  }

  /** Kafka's refusal of `what` (credentials, TLS, an ACL) as its typed error, or undefined (errors.ts: accessFailure). */
  refused(err: unknown, what: string, coordinatorKeys: readonly string[] = []): TidemarkError | undefined {
    return accessFailure(err, this.brokers, what, coordinatorKeys);
  }

  /**
   * Throws NotAuthorizedError when these topics, absent from the listing, are there but hidden:
   * Kafka lists only the topics the principal may describe, and answers a metadata request
   * for any other with TOPIC_AUTHORIZATION_FAILED, whether it exists or not. (This admin
   * never creates topics: kafkajs's admin asks metadata without auto-creation.)
   */
  async checkDescribable(topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    try {
      await this.callOnce(`describing topic${topics.length > 1 ? 's' : ''} ${topics.join(', ')} (Describe, implied by Read, on the topic)`,
        (a) => a.fetchTopicMetadata({ topics: [...topics] }));
    } catch (err) {
      if (!isUnknownTopic(err) && !isMetadataLost(err)) throw err;
      await this.renew(); // absent indeed: a fresh client, or kafkajs would ask for it in every later call
    }
  }

  /** Every topic of the cluster (internal ones included). */
  async topicNames(): Promise<Set<string>> {
    return new Set(await this.call('listing topics', (a) => a.listTopics()));
  }

  /** Partition ids per topic, for topics that exist (a topic deleted since it was listed is absent). */
  async partitionIds(topics: readonly string[]): Promise<Map<string, number[]>> {
    let asked = [...topics];
    const tooSoon = (err: unknown): boolean => isUnknownTopic(err) || isMetadataLost(err);
    return retry(async () => {
      for (;;) {
        if (asked.length === 0) return new Map<string, number[]>();
        try {
          const meta = await this.call('reading topic metadata', (a) => a.fetchTopicMetadata({ topics: asked }));
          return new Map(meta.topics.map((t) => [t.name, t.partitions.map((p) => p.partitionId).sort((x, y) => x - y)]));
        } catch (err) {
          // kafkajs does not say which topic is unknown (or loses the answer): the listing
          // says which are gone; the others are asked for again.
          if (!tooSoon(err)) throw err;
          const listed = await this.topicNames();
          const still = asked.filter((t) => listed.has(t));
          if (still.length === asked.length) throw err; // still listed: its deletion is under way; ask again soon
          asked = still;
        }
      }
    }, {
      baseMs: 100, maxMs: 1_000, budgetMs: this.unreachableAfterMs, retryable: tooSoon,
      giveUp: (err, attempt, elapsed) => new SourceUnreachableError(
        `Kafka brokers ${this.brokers.join(',')} could not describe topics ${asked.join(', ')}: ${rootMessage(err)}; gave up after ${attempt} attempts over ${Math.round(elapsed / 1000)} s`,
        { cause: err }),
    });
  }

  /** Those of `topics` the broker does not know now (deleted, or never created). */
  async unknownTopics(topics: readonly string[]): Promise<string[]> {
    const known = await this.partitionIds(topics);
    return topics.filter((t) => !known.has(t));
  }

  /** Earliest and latest (LSO) offset of every partition of an existing topic. */
  topicOffsets(topic: string): Promise<Map<number, PartitionOffsets>> {
    const pending = this.inflight.get(topic);
    if (pending) return pending;
    const lookup = this.fetchTopicOffsets(topic).finally(() => this.inflight.delete(topic));
    this.inflight.set(topic, lookup);
    return lookup;
  }

  /** What kafkajs's admin.fetchTopicOffsets does, with its two ListOffsets requests sent at once. */
  private async fetchTopicOffsets(topic: string): Promise<Map<number, PartitionOffsets>> {
    const [latest, earliest] = await this.call(`reading offsets of ${topic}`, async () => {
      const cluster = await this.clusterForOffsets();
      await cluster.addTargetTopic(topic);
      await cluster.refreshMetadataIfNecessary();
      const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => ({ partition: p.partitionId }));
      return Promise.all([false, true].map(async (fromBeginning) => {
        const [answer] = await cluster.fetchTopicsOffset([{ topic, fromBeginning, partitions }]);
        return new Map((answer?.partitions ?? []).map((p) => [p.partition, p.offset]));
      }));
    });
    const out = new Map<number, PartitionOffsets>();
    for (const [partition, high] of latest!) {
      out.set(partition, {
        earliest: toOffset(earliest!.get(partition) ?? 'absent from the answer', `${topic}/${partition} earliest`),
        latest: toOffset(high, `${topic}/${partition} latest`),
      });
    }
    return out;
  }

  /** Per partition, the first offset whose timestamp is ≥ `timestamp`, or the latest offset when there is none. */
  async offsetsForTimestamp(topic: string, timestamp: number): Promise<Map<number, number>> {
    const rows = await this.call(`reading offsets of ${topic} by time`, (a) => a.fetchTopicOffsetsByTimestamp(topic, timestamp));
    return new Map(rows.map((r) => [r.partition, toOffset(r.offset, `${topic}/${r.partition} at ${timestamp}`)]));
  }

  /** The consumer group's committed offsets (partitions without one are absent). */
  async groupOffsets(groupId: string, topics: readonly string[]): Promise<Map<string, number>> {
    return new Map([...await this.groupCommits(groupId, topics)].map(([key, c]) => [key, c.offset]));
  }

  /** The consumer group's committed offsets with the metadata committed beside them. */
  async groupCommits(groupId: string, topics: readonly string[]): Promise<Map<string, { offset: number; metadata: string | null }>> {
    const rows = await this.call(`reading the offsets of group ${groupId} (Describe, implied by Read, on the group)`,
      (a) => a.fetchOffsets({ groupId, topics: [...topics] }), [groupId]);
    const out = new Map<string, { offset: number; metadata: string | null }>();
    for (const t of rows) {
      for (const p of t.partitions) {
        const n = Number(p.offset);
        if (n >= 0) out.set(`${t.topic}/${p.partition}`, { offset: toOffset(p.offset, `group ${groupId} ${t.topic}/${p.partition}`), metadata: p.metadata ?? null });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.connecting?.catch(() => undefined);
    await this.offsetsCluster?.catch(() => undefined);
    await this.renew();
  }
}
