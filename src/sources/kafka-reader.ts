// The reading side of the Kafka source: one kafkajs consumer, kept alive across batches,
// reading exactly the planned ranges.
//
// kafkajs has no assign(): a consumer is always a member of a group. The reader's consumer
// is the only member of a group of its own (`<groupId>.reader.<pid>.<time>`), with a
// partition assigner that gives it every partition of the topics it subscribes to (a
// tidemark job reads what its plan says, never a share decided by a group). It never joins
// the job's group: a restart after SIGKILL would wait there for the dead member's session
// to expire (10 s by default) before the first fetch. The job's group gets the positions
// by an OffsetCommit from outside it (generation -1, no member id), which Kafka accepts
// for a group without members: lag tools read it as usual. The reader group has no
// offsets; the source deletes it when it closes (kafka.ts). The consumer is steered with seek,
// pause and resume:
//
//   - Per partition it keeps [lo, hi): every visible record with an offset in it is in
//     its buffer, and `hi` is where the consumer fetches next. In steady state a range
//     starts at the previous range's end, which is `lo`: no seek. A seek happens only when
//     a range starts elsewhere (first read, recovery, reset), after a rebalance (kafkajs
//     then restarts from the group's committed offsets), or after buffered data was
//     dropped to honour the memory bound.
//   - A partition is resumed while it reads a range; once `hi` reaches the range's `until`
//     it goes on fetching as read-ahead (below). Records that arrive beyond `until` stay in
//     the buffer for the next batch instead of being fetched again.
//   - The position, not a count, ends a range: `hi` becomes the fetched batch's
//     lastOffset() + 1, which covers transaction markers and aborted records (kafkajs
//     filters them from `messages` but keeps them in the batch). When the last offsets
//     before `until` hold no record at all, the next fetched batch starts past them and its
//     offsets move `hi` past `until`; a batch whose tail records were compacted away ends
//     at its header's last offset (batchEnd). An empty fetch answer is never taken as the
//     end of a range: a broker also answers "nothing" for a partition when the response's
//     byte budget went to other partitions, and trusting that once lost records (a range
//     [18699, 24960) delivered only up to 19967; bench/results/2026-11-23-kafka-source-
//     short-read.txt). A log whose every offset from `hi` to its end holds no record cannot
//     occur (the active segment keeps its last batch); were it to, the read stalls and the
//     stall diagnosis below reports it instead of skipping anything.
//   - Read-ahead: a partition past its range's `until` keeps fetching while the buffer
//     holds less than `readAheadBytes`, so the next batch's records arrive while the engine
//     stages and delivers this one; the next read then starts from memory instead of a cold
//     fetch. kafkajs sleeps its maxWaitTime whenever every partition is paused (so it is
//     short, 100 ms), and a read that paused each partition at its `until` had them all
//     paused at its end: the next batch waited out that sleep. Past the bound they pause;
//     kafkajs's fetch loop keeps sending heartbeats either way: a slow sink does not cost
//     the group membership.
//   - Memory: records waiting in buffers (ranges after the one being delivered, data
//     beyond `until`) count against `maxBufferedBytes`; past it every partition but the
//     one being delivered is paused, and prefetched data beyond `until` is dropped.
//   - A stall (no progress for a while) is diagnosed against the broker: a position
//     below the log start is data loss, an end below the range a topic that went
//     backwards, a missing topic a deleted one, a consumer fetching elsewhere is put back
//     with a seek, and a broker gone for longer than the budget is SourceUnreachableError.
import { AssignerProtocol, type Cluster, type Consumer, type Kafka, type KafkaMessage, type PartitionAssigner } from 'kafkajs';
import { DataLossError } from '../../recovery/errors';
import { SourceUnreachableError, SourceWentBackwardsError } from '../errors';
import { partitionKey, type Range } from '../../checkpoint/model';
import type { SourceRecord } from '../contracts';
import type { Logger } from '../log';
import { isTransient, rootMessage, toOffset, type KafkaAdmin } from './kafka-admin';
import { checkBatchShape, onFetchedBatches, type FetchedBatch } from './kafka-hook';
import { Latch } from './latch';

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

interface PartState {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  lo: number;
  hi: number;
  recs: SourceRecord[];
  /** Index of the first record still in the buffer (records before it were taken). */
  head: number;
  bytes: number;
  /** Records in the buffer that were fetched before the current read began. */
  carried: number;
  /** The `until` of the range being read; undefined when the partition is not being read. */
  target: number | undefined;
  /** A seek to `hi` was issued: batches fetched elsewhere are from before it. */
  seekPending: boolean;
  /** The consumer's position is unknown (after a join, or after dropping buffered data): seek before resuming. */
  needsSeek: boolean;
  paused: boolean;
  memoryPaused: boolean;
  /** Batches fetched at another offset while no seek was pending. */
  diverged: number;
  /** Bumped by every fetched batch accepted for the partition (progress, for stall detection). */
  progress: number;
}

const RECORD_OVERHEAD = 96;
const ASSIGNER = 'TidemarkEveryPartition';

function headerValues(headers: KafkaMessage['headers']): SourceRecord['headers'] {
  if (!headers) return undefined;
  const keys = Object.keys(headers);
  if (keys.length === 0) return undefined;
  const out: Record<string, string | Buffer | undefined> = {};
  for (const k of keys) {
    const v = headers[k];
    out[k] = Array.isArray(v) ? v[v.length - 1] : v; // a repeated header: the last value, as Kafka's lastHeader()
  }
  return out;
}

function recordBytes(r: SourceRecord): number {
  return (r.key?.length ?? 0) + (r.value?.length ?? 0) + RECORD_OVERHEAD;
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

export class KafkaReader {
  private consumer: Consumer | undefined;
  private unhook: (() => void) | undefined;
  private running = false;
  private joined = false;
  private subscribed = new Set<string>();
  private assignment = new Map<string, Set<number>>();
  private readonly parts = new Map<string, PartState>();
  private failure: Error | undefined;
  /** Anything the read loop waits for: records, a join, a failure, closing. */
  private readonly changes = new Latch();
  /** Records landed in a buffer: wakes an idle engine (waitForData). */
  private readonly arrivals = new Latch();
  private reading = false;
  private head: string | undefined;
  private bufferedBytes = 0;
  private closed = false;
  /** The consumer's own group (see the header); unique per reader. */
  readonly group: string;
  /** The consumer's cluster (learnt from the assigner), for the OffsetCommit to the job's group. */
  private cluster: Cluster | undefined;
  private readonly counters = {
    groupJoins: 0, consumerStarts: 0, seeks: 0, batchesFetched: 0, recordsFetched: 0, recordsFromBuffer: 0, recordsReadAhead: 0,
    memoryPauses: 0, peakBufferedBytes: 0, reseeks: 0,
  };

  constructor(private readonly o: ReaderOptions) {
    this.group = `${o.groupId}.reader.${process.pid}.${Date.now().toString(36)}`;
  }

  stats(): KafkaReadStats {
    return { ...this.counters, bufferedBytes: this.bufferedBytes };
  }

  // ------------------------------------------------------------------ consumer lifecycle

  private createConsumer(): Consumer {
    const t = this.o.tuning;
    const sessionTimeout = t.sessionTimeout ?? 10_000;
    const consumer = this.o.kafka.consumer({
      groupId: this.group,
      partitionAssigners: [everyPartitionAssigner((cluster) => {
        this.cluster = cluster as Cluster;
        this.unhook?.();
        this.unhook = onFetchedBatches(cluster, (batch) => this.onBatch(batch));
      })],
      sessionTimeout,
      rebalanceTimeout: t.rebalanceTimeout ?? Math.max(sessionTimeout, 30_000),
      heartbeatInterval: t.heartbeatInterval ?? Math.min(1_000, Math.floor(sessionTimeout / 3)),
      maxBytesPerPartition: t.maxBytesPerPartition ?? 2 * 1024 * 1024,
      maxBytes: t.maxBytes ?? 50 * 1024 * 1024,
      // Short: kafkajs sleeps this long whenever every partition is paused (read-ahead full),
      // and a partition resumed meanwhile waits for it. The long poll still answers at once
      // when records arrive; idle, it costs ≤ 10 fetches a second.
      maxWaitTimeInMs: t.maxWaitTimeInMs ?? 100,
      readUncommitted: this.o.readUncommitted,
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 },
    });
    consumer.on(consumer.events.GROUP_JOIN, (e) => this.onJoin(e.payload.memberAssignment));
    consumer.on(consumer.events.CRASH, (e) => {
      const { error, restart } = e.payload;
      this.joined = false;
      if (restart) {
        this.o.log.warn({ err: rootMessage(error) }, 'Kafka consumer failed; kafkajs restarts it');
      } else if (this.running && !this.closed) {
        this.failure = isTransient(error)
          ? new SourceUnreachableError(`The Kafka consumer (group ${this.group}) stopped: ${rootMessage(error)}`, { cause: error })
          : error;
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
      this.consumer = this.createConsumer();
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
    this.assignment = new Map();
    this.unhook?.();
    this.unhook = undefined;
    for (const st of this.parts.values()) st.needsSeek = true;
    await consumer?.disconnect().catch(() => {});
  }

  private covered(parts: readonly Range[]): boolean {
    return this.joined && parts.every((r) => this.assignment.get(r.topic)?.has(r.partition) === true);
  }

  /** A running consumer, subscribed to the ranges' topics and assigned their partitions. */
  private async ensureConsumer(ranges: readonly Range[], signal: AbortSignal | undefined): Promise<void> {
    const topics = [...new Set(ranges.map((r) => r.topic))];
    if (!this.running || topics.some((t) => !this.subscribed.has(t))) await this.start(topics);
    const started = Date.now();
    let restartedAt = Date.now();
    while (!this.covered(ranges)) {
      this.check(signal);
      const waited = Date.now() - started;
      if (waited > this.o.admin.unreachableAfterMs) {
        const missing = ranges.filter((r) => this.assignment.get(r.topic)?.has(r.partition) !== true).map(partitionKey);
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
    this.assignment = new Map(Object.entries(memberAssignment).map(([t, ps]) => [t, new Set(ps)]));
    const consumer = this.consumer;
    if (!consumer) return;
    try {
      // kafkajs restarts every partition from the group's committed offsets and unpaused:
      // pause them all, then put back the ones being read, at the reader's positions.
      // (explicit partition lists: kafkajs's topic-wide pause is undone by any later per-partition pause)
      consumer.pause(Object.entries(memberAssignment).map(([topic, partitions]) => ({ topic, partitions })));
      for (const st of this.parts.values()) {
        st.paused = true;
        st.seekPending = false;
        st.needsSeek = true;
        if (this.wantsData(st) && this.assignment.get(st.topic)?.has(st.partition)) this.resume(st);
      }
      this.joined = true;
    } catch (err) {
      this.fail(err);
    }
    this.changes.notify();
  }

  // ------------------------------------------------------------------ per-partition control

  private wantsData(st: PartState): boolean {
    if (st.memoryPaused) return false;
    if (st.target !== undefined && st.hi < st.target) return true;
    // Past its range (or between batches): read ahead while there is room. Pausing a partition
    // as soon as it reached `until` paused them all by the end of every read, and kafkajs then
    // sleeps maxWaitTime before its next fetch: the next batch's read waited for that sleep.
    return this.bufferedBytes < this.readAhead;
  }

  private get readAhead(): number {
    return Math.min(this.o.readAheadBytes, this.o.maxBufferedBytes / 2);
  }

  /** Resumes or pauses the partition as wantsData() says. */
  private steer(st: PartState): void {
    if (this.wantsData(st)) this.resume(st);
    else this.pause(st);
  }

  /** Pauses the partitions reading ahead once the buffer is full, resumes them when it has room. */
  private steerReadAhead(): void {
    for (const st of this.parts.values()) if (st.paused === this.wantsData(st)) this.steer(st);
  }

  private resume(st: PartState): void {
    const consumer = this.consumer;
    if (!consumer || !this.assignment.get(st.topic)?.has(st.partition)) return; // onJoin resumes it
    try {
      if (st.needsSeek) {
        consumer.seek({ topic: st.topic, partition: st.partition, offset: String(st.hi) });
        st.needsSeek = false;
        st.seekPending = true;
        this.counters.seeks++;
      }
      if (st.paused) {
        consumer.resume([{ topic: st.topic, partitions: [st.partition] }]);
        st.paused = false;
      }
    } catch {
      // the consumer is between a crash and kafkajs's restart of it: onJoin seeks and resumes
    }
  }

  private pause(st: PartState): void {
    if (st.paused) return;
    st.paused = true;
    try {
      this.consumer?.pause([{ topic: st.topic, partitions: [st.partition] }]);
    } catch {
      // not running (between a crash and kafkajs's restart): onJoin pauses everything
    }
  }

  // ------------------------------------------------------------------ fetched data

  private onBatch(raw: FetchedBatch): void {
    try {
      checkBatchShape(raw);
      this.counters.batchesFetched++;
      const st = this.parts.get(`${raw.topic}/${raw.partition}`);
      if (!st) return;
      const fetched = toOffset(raw.fetchedOffset, `${st.key} fetch position`);
      if (fetched !== st.hi) {
        if (!st.seekPending && !st.needsSeek) {
          st.diverged++;
          this.changes.notify();
        }
        return; // fetched before a seek, or elsewhere: not ours
      }
      st.seekPending = false;
      st.progress++;
      if (raw.rawMessages.length === 0) return; // not evidence of anything (see the header)
      const before = st.recs.length;
      for (const m of raw.messages) {
        const offset = toOffset(m.offset, `${st.key} record`);
        if (offset < st.hi) continue;
        const record: SourceRecord = {
          topic: st.topic, partition: st.partition, offset, key: m.key ?? null, value: m.value ?? null,
          timestamp: Number(m.timestamp), headers: headerValues(m.headers),
        };
        st.recs.push(record);
        const bytes = recordBytes(record);
        st.bytes += bytes;
        this.bufferedBytes += bytes;
        this.counters.recordsFetched++;
        if (st.target === undefined) this.counters.recordsReadAhead++;
      }
      if (st.recs.length > before) this.arrivals.notify();
      st.hi = Math.max(st.hi + 1, toOffset(raw.lastOffset(), `${st.key} last offset`) + 1, batchEnd(raw));
      if (this.bufferedBytes > this.counters.peakBufferedBytes) this.counters.peakBufferedBytes = this.bufferedBytes;
      if (!this.wantsData(st)) this.pause(st);
      if (this.bufferedBytes >= this.readAhead) this.steerReadAhead();
      if (this.bufferedBytes > this.o.maxBufferedBytes) this.relieveMemory();
      this.changes.notify();
    } catch (err) {
      this.fail(err);
    }
  }



  /** Over the memory bound: pause every partition but the one being delivered, drop prefetched data. */
  private relieveMemory(): void {
    for (const st of this.parts.values()) {
      if (st.key === this.head) continue;
      if (st.target === undefined && st.recs.length > st.head) {
        this.dropBuffered(st);
      } else if (st.target !== undefined && !st.memoryPaused && st.hi < st.target) {
        st.memoryPaused = true;
        this.counters.memoryPauses++;
        this.pause(st);
      }
      if (this.bufferedBytes <= this.o.maxBufferedBytes) return;
    }
  }

  private dropBuffered(st: PartState): void {
    const first = st.recs[st.head];
    this.bufferedBytes -= st.bytes;
    st.bytes = 0;
    st.recs = [];
    st.head = 0;
    st.carried = 0;
    if (first) st.hi = Math.max(st.lo, first.offset);
    st.needsSeek = true;
  }

  private resumeAfterMemory(): void {
    if (this.bufferedBytes > this.o.maxBufferedBytes / 2) return;
    for (const st of this.parts.values()) {
      if (!st.memoryPaused) continue;
      st.memoryPaused = false;
      if (this.wantsData(st)) this.resume(st);
    }
  }

  /** Takes the buffered records below `until`, in order. */
  private take(st: PartState, until: number): SourceRecord[] {
    let end = st.head;
    while (end < st.recs.length && st.recs[end]!.offset < until) end++;
    if (end === st.head) return [];
    const out = st.recs.slice(st.head, end);
    let bytes = 0;
    for (const r of out) bytes += recordBytes(r);
    st.bytes -= bytes;
    this.bufferedBytes -= bytes;
    const fromBuffer = Math.min(st.carried, out.length);
    st.carried -= fromBuffer;
    this.counters.recordsFromBuffer += fromBuffer;
    st.head = end;
    st.lo = out[out.length - 1]!.offset + 1; // taken: a read of the same range again must not find them gone
    if (st.head > 1024 && st.head * 2 > st.recs.length) {
      st.recs = st.recs.slice(st.head);
      st.head = 0;
    }
    this.resumeAfterMemory();
    this.steerReadAhead();
    return out;
  }

  // ------------------------------------------------------------------ reading

  /** Reads exactly the ranges, yielding each range's records in offset order, range after range. */
  async *read(ranges: readonly Range[], signal?: AbortSignal): AsyncGenerator<SourceRecord[]> {
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
      for (const r of ranges) this.activate(r);
      for (const r of work) {
        const st = this.parts.get(partitionKey(r))!;
        this.head = st.key;
        if (st.memoryPaused) {
          st.memoryPaused = false;
          if (this.wantsData(st)) this.resume(st);
        }
        let progressAt = Date.now();
        let seen = st.progress;
        for (;;) {
          this.check(signal);
          // Whether the range is complete is decided BEFORE taking: while `yield` waits for the
          // consumer, more fetches may land and move `hi` past `until`; deciding after the yield
          // ended the range with those records still in the buffer (a batch committed short;
          // regression test test/kafka/slow-consumer.test.ts).
          const complete = st.hi >= r.until;
          const chunk = this.take(st, r.until);
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
        // Whatever is left below `until` was taken above; what is beyond stays for the next batch.
        const left = st.recs[st.head];
        if (left !== undefined && left.offset < r.until) {
          throw new Error(`KafkaReader invariant broken: ${describe(r)} ended with offset ${left.offset} still unread (a bug: please report it)`);
        }
        st.lo = r.until;
        st.target = undefined;
        this.steer(st);
      }
    } finally {
      for (const r of ranges) {
        const st = this.parts.get(partitionKey(r));
        if (!st) continue;
        st.target = undefined;
        st.memoryPaused = false;
        this.steer(st);
      }
      this.head = undefined;
      this.reading = false;
    }
  }

  private activate(r: Range): void {
    const key = partitionKey(r);
    let st = this.parts.get(key);
    if (st && st.lo <= r.from && r.from <= st.hi) {
      // Continue where the buffer is (steady state: r.from === st.lo, no seek).
      while (st.head < st.recs.length && st.recs[st.head]!.offset < r.from) {
        const dropped = st.recs[st.head++]!;
        const b = recordBytes(dropped);
        st.bytes -= b;
        this.bufferedBytes -= b;
        if (st.carried > 0) st.carried--;
      }
      st.lo = r.from;
      st.carried = st.recs.length - st.head;
    } else {
      if (st) this.bufferedBytes -= st.bytes;
      st = {
        topic: r.topic, partition: r.partition, key, lo: r.from, hi: r.from, recs: [], head: 0, bytes: 0, carried: 0, target: undefined,
        seekPending: false, needsSeek: true, paused: true, memoryPaused: false, diverged: 0, progress: 0,
      };
      this.parts.set(key, st);
    }
    st.target = r.until;
    st.diverged = 0;
    if (this.wantsData(st)) this.resume(st);
  }

  /** No progress: ask the broker why, and act (throw, put the consumer back, or wait on). */
  private async diagnose(st: PartState, r: Range, progressAt: number): Promise<void> {
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
        throw new SourceUnreachableError(`Kafka brokers unreachable while reading ${describe(r)}: no progress for ${Math.round(stalledMs / 1000)} s (${rootMessage(err.cause ?? err)})`, { cause: err });
      }
      throw err;
    }
    const o = offsets.get(r.partition);
    if (!o) throw new SourceWentBackwardsError(r.topic, r.partition, r.from, 0);
    if (o.latest < r.until) throw new SourceWentBackwardsError(r.topic, r.partition, r.until, o.latest);
    if (o.earliest > st.hi) {
      throw new DataLossError([{ topic: r.topic, partition: r.partition, from: st.hi, until: Math.min(o.earliest, r.until) }]);
    }
    if (st.diverged > 0 || (stalledMs > 4 * this.o.stallCheckMs && this.joined && !st.seekPending)) {
      // kafkajs moved the consumer (e.g. it reset an out-of-range position), or it is silent: put it back.
      this.o.log.warn({ partition: st.key, position: st.hi, diverged: st.diverged }, 'Kafka consumer is not fetching at the reader position; seeking back');
      st.diverged = 0;
      st.needsSeek = true;
      this.counters.reseeks++;
      if (this.joined) this.resume(st);
    }
  }

  // ------------------------------------------------------------------ commits, waiting, closing

  /**
   * Commits positions to the job's consumer group (for lag tools; the checkpoint stays the
   * truth), from outside the group: generation -1 and no member id, as a consumer that
   * assigns itself partitions does. Kafka refuses it (UNKNOWN_MEMBER_ID) only while the
   * group has members, e.g. a consumer of another tool in the same group.
   */
  async commit(positions: ReadonlyArray<{ topic: string; partition: number; offset: number }>): Promise<void> {
    if (positions.length === 0 || this.closed) return;
    if (!this.cluster) await this.ensureConsumer(positions.map((p) => ({ topic: p.topic, partition: p.partition, from: 0, until: 0 })), undefined);
    const byTopic = new Map<string, Array<{ partition: number; offset: string }>>();
    for (const p of positions) {
      const list = byTopic.get(p.topic) ?? [];
      list.push({ partition: p.partition, offset: String(p.offset) });
      byTopic.set(p.topic, list);
    }
    const coordinator = await this.cluster!.findGroupCoordinator({ groupId: this.o.groupId });
    await coordinator.offsetCommit({
      groupId: this.o.groupId, groupGenerationId: -1, memberId: '', retentionTime: -1,
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
    });
  }

  private fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
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
    this.bufferedBytes = 0;
    this.parts.clear();
  }
}

function describe(r: Range): string {
  return `${partitionKey(r)} [${r.from}, ${r.until})`;
}
