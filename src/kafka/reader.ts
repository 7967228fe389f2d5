// The reading side of the Kafka source: one kafkajs consumer, kept alive across batches,
// reading exactly the planned ranges. How and why: docs/kafka-source.md ("How a range is
// read"). The decisions (what is buffered, when a range is complete, seek, pause, resume,
// read-ahead and the memory bound) are the pure PartitionBuffers (partition-buffer.ts); this
// file runs the consumer's lifecycle, applies those decisions, waits, diagnoses stalls and
// commits positions to the job's group.
import type { Cluster, Consumer, Kafka } from 'kafkajs';
import { causes, isTidemarkError } from '../../checkpoint/errors';
import { DataLossError } from '../../recovery/errors';
import { SourceUnreachableError, SourceWentBackwardsError } from '../errors';
import { partitionKey, type Range } from '../../checkpoint/model';
import type { SourceChunk, SourceRecord } from '../contracts';
import type { Logger } from '../log';
import type { KafkaAdmin } from './admin';
import { recordBytes } from '../sources/chunk';
import { applyActions, createConsumer, RECORD_OVERHEAD, toAnswer, type ConsumerTuning } from './consumer';
import { CONSUMER_RESTART_BACKOFF, isTransient, isUnknownTopic, rootMessage } from './errors';
import { backoffMs } from '../retry';
import { checkBatchShape, onFetchedBatches, type FetchedBatch } from './fetch-hook';
import { Latch } from './latch';
import { describeRange, PartitionBuffers, type PartitionState } from './partition-buffer';

export type { ConsumerTuning } from './consumer';

export interface KafkaReadStats {
  /** Times the consumer joined the group (a start, a rebalance, a restart after a crash). */
  readonly groupJoins: number;
  /** Times the consumer was (re)started by the reader (first read, new topics or partitions). */
  readonly consumerStarts: number;
  readonly seeks: number;
  readonly batchesFetched: number;
  readonly recordsFetched: number;
  /** Records delivered that had been fetched (beyond an earlier range's end) before their read began. */
  readonly recordsFromBuffer: number;
  /** Records fetched for a partition while no range of it was being read (read-ahead). */
  readonly recordsReadAhead: number;
  /** Times partitions were paused because the buffer was full. */
  readonly memoryPauses: number;
  readonly bufferedBytes: number;
  readonly peakBufferedBytes: number;
  /** Times the consumer was found fetching elsewhere than the reader's position and put back. */
  readonly reseeks: number;
}

export interface ReaderOptions {
  readonly kafka: Kafka;
  readonly admin: KafkaAdmin;
  readonly groupId: string;
  readonly readUncommitted: boolean;
  readonly tuning: ConsumerTuning;
  readonly maxBufferedBytes: number;
  /** Fetch ahead of the next plan while fewer bytes than this are buffered (capped at half of maxBufferedBytes; 0: no read-ahead). */
  readonly readAheadBytes: number;
  /** How long a read may make no progress before the reader asks the broker why (default 3 s). */
  readonly stallCheckMs: number;
  readonly log: Logger;
}

export class KafkaReader {
  private consumer: Consumer | undefined;
  private unhook: (() => void) | undefined;
  private running = false;
  private joined = false;
  private subscribed = new Set<string>();
  private readonly buffers: PartitionBuffers<SourceRecord>;
  private failure: Error | undefined;
  /** The consumer stopped for good on an error that may pass (kafkajs does not restart it). */
  private stoppedTransiently = false;
  /** Anything the read loop waits for: records, a join, a failure, closing. */
  private readonly changes = new Latch();
  /** Records landed in a buffer: wakes an idle engine (waitForData). */
  private readonly arrivals = new Latch();
  private reading = false;
  private closed = false;
  /** The consumer's own group (docs/kafka-source.md): unique per reader. */
  readonly group: string;
  /** The consumer's cluster (learnt from the assigner), for the OffsetCommit to the job's group. */
  private cluster: Cluster | undefined;
  private readonly counters = { groupJoins: 0, consumerStarts: 0, batchesFetched: 0 };

  constructor(private readonly o: ReaderOptions) {
    this.group = `${o.groupId}.reader.${process.pid}.${Date.now().toString(36)}`;
    this.buffers = new PartitionBuffers({ maxBufferedBytes: o.maxBufferedBytes, readAheadBytes: o.readAheadBytes }, recordBytes, RECORD_OVERHEAD);
  }

  stats(): KafkaReadStats {
    return { ...this.counters, ...this.buffers.counters, bufferedBytes: this.buffers.bufferedBytes };
  }

  /** Applies what the buffers decided. */
  private steer(): void {
    const actions = this.buffers.drain();
    if (this.consumer && actions.length > 0) applyActions(this.consumer, actions);
  }

  // ------------------------------------------------------------------ consumer lifecycle

  private newConsumer(): Consumer {
    const consumer = createConsumer(this.o.kafka, this.group, this.o.tuning, this.o.readUncommitted, (cluster) => {
      this.cluster = cluster as Cluster;
      this.unhook?.();
      this.unhook = onFetchedBatches(cluster, (batch) => this.onBatch(batch));
    });
    consumer.on(consumer.events.GROUP_JOIN, (e) => this.onJoin(e.payload.memberAssignment));
    consumer.on(consumer.events.CRASH, (e) => {
      const { error, restart } = e.payload;
      this.joined = false;
      if (restart) {
        this.o.log.warn({ err: rootMessage(error) }, 'Kafka consumer failed; kafkajs restarts it');
      } else if (this.running && !this.closed) {
        // tidemark's own error from within kafkajs (the fetch decoder's SourceCorruptError) as it is, or Kafka's refusal as its typed error.
        const named = causes(error).find(isTidemarkError) ?? this.refused(error);
        this.stoppedTransiently = named === undefined && isTransient(error);
        this.failure = named ?? (this.stoppedTransiently
          ? new SourceUnreachableError(`The Kafka consumer (group ${this.group}) stopped: ${rootMessage(error)}`, { cause: error })
          : error);
      }
      this.changes.notify();
    });
    consumer.on(consumer.events.REBALANCING, () => {
      this.joined = false;
    });
    return consumer;
  }

  /** (Re)starts the consumer subscribed to `topics` (and every topic subscribed so far). */
  private async start(topics: Iterable<string>): Promise<void> {
    if (!this.consumer) {
      this.consumer = this.newConsumer();
      await this.consumer.connect();
    }
    const consumer = this.consumer;
    if (this.running) await consumer.stop();
    this.running = false;
    this.joined = false;
    const wanted = [...new Set([...this.subscribed, ...topics])].sort();
    await consumer.subscribe({ topics: wanted, fromBeginning: true });
    this.subscribed = new Set(wanted);
    this.failure = undefined;
    this.running = true;
    this.counters.consumerStarts++;
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: true, eachBatch: async () => {} });
  }

  /** Forgets the consumer entirely (a subscribed topic was deleted: kafkajs would keep asking for it). */
  async reset(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = undefined;
    this.running = false;
    this.joined = false;
    this.subscribed = new Set();
    this.buffers.forgetConsumer();
    this.unhook?.();
    this.unhook = undefined;
    await consumer?.disconnect().catch(() => {});
  }

  private covered(parts: readonly Range[]): boolean {
    return this.joined && parts.every((r) => this.buffers.isAssigned(r.topic, r.partition));
  }

  /** A running consumer, subscribed to the ranges' topics and assigned their partitions. */
  private async ensureConsumer(ranges: readonly Range[], signal: AbortSignal | undefined): Promise<void> {
    const topics = [...new Set(ranges.map((r) => r.topic))];
    if (!this.running || topics.some((t) => !this.subscribed.has(t))) await this.start(topics);
    const started = Date.now();
    let restartedAt = Date.now();
    let restarts = 0;
    while (!this.covered(ranges)) {
      if (this.failure && this.stoppedTransiently && Date.now() - started < this.o.admin.unreachableAfterMs) {
        // kafkajs gives up on some passing states for good (no group coordinator yet, while a
        // new cluster creates __consumer_offsets): a new consumer, within the reconnect budget.
        this.o.log.warn({ err: rootMessage(this.failure) }, 'Kafka consumer stopped while joining; starting it again');
        this.failure = undefined;
        await this.changes.wait(backoffMs(++restarts, CONSUMER_RESTART_BACKOFF), signal);
        await this.reset();
        await this.start(topics);
        restartedAt = Date.now();
        continue;
      }
      this.check(signal);
      const waited = Date.now() - started;
      if (waited > this.o.admin.unreachableAfterMs) {
        const missing = ranges.filter((r) => !this.buffers.isAssigned(r.topic, r.partition)).map(partitionKey);
        throw new SourceUnreachableError(this.joined
          ? `The Kafka consumer (group ${this.group}) was not given ${missing.join(', ')} within ${Math.round(waited / 1000)} s`
          : `The Kafka consumer could not join group ${this.group} within ${Math.round(waited / 1000)} s`);
      }
      if (this.joined && Date.now() - restartedAt > 1_000) {
        // Joined, but a partition is missing: the group leader's metadata predates it (a partition
        // just added). Join again; kafkajs refreshes metadata before assigning.
        restartedAt = Date.now();
        await this.start(topics);
        continue;
      }
      await this.changes.wait(250, signal);
    }
  }

  private onJoin(memberAssignment: Record<string, number[]>): void {
    this.counters.groupJoins++;
    try {
      this.buffers.joined(memberAssignment);
      if (!this.consumer) {
        this.buffers.drain();
        return;
      }
      this.steer();
      this.joined = true;
    } catch (err) {
      this.fail(err);
    }
    this.changes.notify();
  }

  private onBatch(raw: FetchedBatch): void {
    try {
      checkBatchShape(raw);
      this.counters.batchesFetched++;
      const outcome = this.buffers.fetched(toAnswer(raw));
      this.steer();
      if (outcome === 'arrived') this.arrivals.notify();
      // An empty answer is progress, but nothing to wake for: the read loop sees it at its next check.
      if (outcome !== 'ignored' && outcome !== 'empty') this.changes.notify();
    } catch (err) {
      this.fail(err);
    }
  }

  // ------------------------------------------------------------------ reading

  /** Reads exactly the ranges, yielding each range's records in offset order, range after range, with their bytes. */
  async *read(ranges: readonly Range[], signal?: AbortSignal): AsyncGenerator<SourceChunk> {
    // Empty ranges (a new partition's first batch records where it starts) are activated
    // too: the consumer starts and reads ahead from there, so the first records to arrive
    // wake an idle engine (waitForData) and are already fetched when their batch reads them.
    const work = ranges.filter((r) => r.until > r.from);
    if (ranges.length === 0) return;
    if (this.reading) throw new Error('KafkaReader: one read at a time');
    this.reading = true;
    this.arrivals.reset();
    try {
      await this.ensureConsumer(ranges, signal);
      for (const r of ranges) this.buffers.activate(r);
      this.steer();
      for (const r of work) {
        this.buffers.deliver(r);
        this.steer();
        const st = this.buffers.get(partitionKey(r))!;
        let progressAt = Date.now();
        let seen = st.progress;
        for (;;) {
          this.check(signal);
          const complete = this.buffers.complete(r); // before taking: see complete()
          const chunk = this.buffers.take(r);
          this.steer();
          if (chunk.length > 0) yield chunk;
          if (complete) break;
          await this.changes.wait(this.o.stallCheckMs, signal);
          if (st.progress !== seen) {
            progressAt = Date.now();
            seen = st.progress;
          } else if (Date.now() - progressAt >= this.o.stallCheckMs || st.diverged > 0) {
            await this.diagnose(st, r, progressAt);
          }
        }
        this.buffers.finish(r);
        this.steer();
      }
    } catch (err) {
      // kafkajs's "unknown topic" can surface from any step (subscribe, a crash, a lookup),
      // whichever sees the deletion first: each becomes the same typed error.
      throw isUnknownTopic(err) ? await this.unknownTopicError(ranges, err) : this.refused(err, ranges) ?? err;
    } finally {
      this.buffers.release(ranges);
      this.steer();
      this.reading = false;
    }
  }

  /** Kafka's refusal (credentials, TLS, an ACL) of what the consumer does, naming the resources its ACLs must cover. */
  private refused(err: unknown, ranges?: readonly Range[]): Error | undefined {
    const topics = ranges ? [...new Set(ranges.map((r) => r.topic))] : [...this.subscribed];
    return this.o.admin.refused(err, `reading ${topics.join(', ')} as a member of group ${this.group} ` +
      `(Read on the topic${topics.length > 1 ? 's' : ''}; Read on the groups whose names start with ${this.o.groupId}, the job's group and its readers')`, [this.group]);
  }

  /** No progress: ask the broker why, and act (throw, put the consumer back, or wait on). */
  private async diagnose(st: Readonly<PartitionState<SourceRecord>>, r: Range, progressAt: number): Promise<void> {
    const stalledMs = Date.now() - progressAt;
    let offsets: Map<number, { earliest: number; latest: number }> | undefined;
    try {
      const topics = await this.o.admin.topicNames();
      if (!topics.has(r.topic)) {
        throw new SourceWentBackwardsError(r.topic, r.partition, r.from, 0);
      }
      offsets = await this.o.admin.topicOffsets(r.topic);
    } catch (err) {
      if (err instanceof SourceUnreachableError) {
        if (stalledMs < this.o.admin.unreachableAfterMs) return;
        throw new SourceUnreachableError(`Kafka brokers unreachable while reading ${describeRange(r)}: no progress for ${Math.round(stalledMs / 1000)} s (${rootMessage(err.cause ?? err)})`, { cause: err });
      }
      throw err;
    }
    const o = offsets.get(r.partition);
    if (!o) throw new SourceWentBackwardsError(r.topic, r.partition, r.from, 0);
    if (o.latest < r.until) throw new SourceWentBackwardsError(r.topic, r.partition, r.until, o.latest);
    if (o.earliest > st.position) {
      throw new DataLossError([{ topic: r.topic, partition: r.partition, from: st.position, until: Math.min(o.earliest, r.until) }]);
    }
    if (st.diverged > 0 || (stalledMs > 4 * this.o.stallCheckMs && this.joined && !st.seekPending)) {
      // kafkajs moved the consumer (e.g. it reset an out-of-range position), or it is silent: put it back.
      this.o.log.warn({ partition: st.key, position: st.position, diverged: st.diverged }, 'Kafka consumer is not fetching at the reader position; seeking back');
      this.buffers.reseek(st.key, this.joined);
      this.steer();
    }
  }

  /** The broker called a topic of the ranges unknown while reading them: which one, and what it holds now. */
  private async unknownTopicError(ranges: readonly Range[], err: unknown): Promise<Error> {
    const gone = new Set(await this.o.admin.unknownTopics([...new Set(ranges.map((r) => r.topic))]));
    const deleted = ranges.find((r) => gone.has(r.topic));
    if (deleted) return new SourceWentBackwardsError(deleted.topic, deleted.partition, deleted.from, 0);
    for (const r of ranges) {
      let latest: number;
      try {
        latest = (await this.o.admin.topicOffsets(r.topic)).get(r.partition)?.latest ?? 0;
      } catch (again) {
        if (!isUnknownTopic(again)) throw again;
        return new SourceWentBackwardsError(r.topic, r.partition, r.from, 0);
      }
      if (latest < r.until) return new SourceWentBackwardsError(r.topic, r.partition, r.until, latest);
    }
    return new SourceUnreachableError(`Kafka called a topic of ${ranges.map(describeRange).join(', ')} unknown while it was read, and it exists again ` +
      `(deleted and recreated meanwhile?): ${rootMessage(err)}`, { cause: err });
  }

  // ------------------------------------------------------------------ commits, waiting, closing

  /**
   * Commits positions to the job's consumer group (for lag tools; the checkpoint stays the
   * truth), from outside the group: generation -1 and no member id, as a consumer that
   * assigns itself partitions does. Kafka refuses it (UNKNOWN_MEMBER_ID) only while the
   * group has members, e.g. a consumer of another tool in the same group. `metadata` goes
   * beside every offset (the engine's progress mark, recovery/crosscheck.ts).
   */
  async commit(positions: ReadonlyArray<{ topic: string; partition: number; offset: number }>, metadata?: string): Promise<void> {
    if (positions.length === 0 || this.closed) return;
    if (!this.cluster) await this.ensureConsumer(positions.map((p) => ({ topic: p.topic, partition: p.partition, from: 0, until: 0 })), undefined);
    const byTopic = new Map<string, Array<{ partition: number; offset: string; metadata?: string }>>();
    for (const p of positions) {
      const list = byTopic.get(p.topic) ?? [];
      list.push({ partition: p.partition, offset: String(p.offset), ...(metadata !== undefined ? { metadata } : {}) });
      byTopic.set(p.topic, list);
    }
    try {
      const coordinator = await this.cluster!.findGroupCoordinator({ groupId: this.o.groupId });
      await coordinator.offsetCommit({
        groupId: this.o.groupId, groupGenerationId: -1, memberId: '', retentionTime: -1,
        topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
      });
    } catch (err) {
      throw this.o.admin.refused(err, `committing positions to group ${this.o.groupId} (Read on the group and the topics)`, [this.o.groupId]) ?? err;
    }
  }

  private fail(err: unknown): void {
    if (!this.failure) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.stoppedTransiently = false;
    }
    this.changes.notify();
  }

  private check(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('read aborted');
    if (this.failure) {
      const f = this.failure;
      this.failure = undefined;
      throw f;
    }
    if (this.closed) throw new Error('the Kafka source is closed');
  }

  /**
   * Resolves when the next records land in the buffer (read-ahead keeps fetching between
   * batches), after `ms`, or on abort: an idle engine waits here instead of polling. Records
   * that landed since the last read began end it at once: they may be newer than the plan
   * that found nothing.
   */
  waitForData(ms: number, signal: AbortSignal): Promise<void> {
    return this.arrivals.wait(ms, signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.changes.notify();
    this.arrivals.notify();
    const consumer = this.consumer;
    this.consumer = undefined;
    this.running = false;
    this.unhook?.();
    this.unhook = undefined;
    await consumer?.disconnect();
    this.buffers.clear();
  }
}
