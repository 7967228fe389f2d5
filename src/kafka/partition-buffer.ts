// The Kafka reader's decisions, as a pure state machine (docs/kafka-source.md, "How a range
// is read"): per partition, the records fetched and not yet taken, the position the consumer
// fetches next, and what the consumer should do about it (seek, pause, resume). Plain data in
// (ranges, fetched answers, the group's assignment), decisions out (ConsumerAction[]); no
// kafkajs and no timers, so test/property/partition-buffer.property.test.ts drives it with
// synthetic logs and fetch sequences by the thousand. The consumer lifecycle (consumer.ts,
// reader.ts) applies the actions and feeds back what kafkajs fetched.
//
// Both short-read bugs found so far lived in this logic: trusting an empty answer as the end
// of a range, and deciding completion after a `yield` (see `complete` and `fetched`).
import { partitionKey, type Range } from '../../checkpoint/model';

/** What the consumer should do for one partition, in order. */
export type ConsumerAction =
  | { readonly kind: 'seek'; readonly topic: string; readonly partition: number; readonly offset: number }
  | { readonly kind: 'pause' | 'resume'; readonly topic: string; readonly partition: number };

/** Records taken from a partition's buffer, with their bytes as `sizeOf` counts them. */
export type TakenRecords<R> = R[] & { bytes: number };

/** One fetch answer for a partition, as the fetch hook saw it. */
export interface FetchedAnswer<R> {
  readonly topic: string;
  readonly partition: number;
  /** The offset the fetch asked from. */
  readonly fetchedOffset: number;
  /** Records the answer holds, visible or not (control records and aborted ones count). 0: an empty answer. */
  readonly rawCount: number;
  /** The visible records, in offset order. */
  readonly records: readonly R[];
  /** The offset after the last one the answer covers (markers, aborted records and a batch's compacted tail included). */
  readonly end: number;
}

/**
 * What an answer did: `ignored` (no such partition, or fetched before a seek), `diverged`
 * (fetched elsewhere than the position), `empty` (progress, no move), `moved` (the position
 * moved, no visible record), `arrived` (records landed).
 */
export type FetchOutcome = 'ignored' | 'diverged' | 'empty' | 'moved' | 'arrived';

export interface BufferLimits {
  /** Past it, every partition but the one being delivered pauses and prefetched data is dropped. */
  readonly maxBufferedBytes: number;
  /** Partitions past their range fetch on while fewer bytes than this are buffered (capped at half of maxBufferedBytes). */
  readonly readAheadBytes: number;
}

export interface BufferCounters {
  seeks: number;
  recordsFetched: number;
  /** Records delivered that had been fetched before their read began. */
  recordsFromBuffer: number;
  /** Records fetched for a partition while no range of it was being read. */
  recordsReadAhead: number;
  memoryPauses: number;
  peakBufferedBytes: number;
  reseeks: number;
}

/** One partition's state. Read-only outside this module. */
export interface PartitionState<R> {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  /** Every visible record with an offset in [lo, position) is in `records` from `next` on. */
  lo: number;
  /** Where the consumer fetches next: the consumer's position as far as the reader knows. */
  position: number;
  records: R[];
  /** Index of the first record not yet taken. */
  next: number;
  bytes: number;
  /** Records in the buffer that were fetched before the current read began. */
  carried: number;
  /** The `until` of the range being read; undefined when the partition is not being read. */
  until: number | undefined;
  /** A seek to `position` was issued: answers fetched elsewhere are from before it. */
  seekPending: boolean;
  /** The consumer's position is unknown (after a join, or after dropping buffered data): seek before resuming. */
  needsSeek: boolean;
  paused: boolean;
  memoryPaused: boolean;
  /** Answers fetched at another offset while no seek was pending. */
  diverged: number;
  /** Bumped by every answer accepted for the partition (progress, for stall detection). */
  progress: number;
}

export class PartitionBuffers<R extends { readonly offset: number }> {
  private readonly parts = new Map<string, PartitionState<R>>();
  private assignment = new Map<string, ReadonlySet<number>>();
  private actions: ConsumerAction[] = [];
  /** The partition whose range is being delivered: never paused or dropped for memory. */
  private delivering: string | undefined;
  bufferedBytes = 0;
  readonly counters: BufferCounters = { seeks: 0, recordsFetched: 0, recordsFromBuffer: 0, recordsReadAhead: 0, memoryPauses: 0, peakBufferedBytes: 0, reseeks: 0 };

  /**
   * `sizeOf` is a record's bytes (what `take` adds up); `overhead` what a buffered record costs
   * the memory bound besides them.
   */
  constructor(private readonly limits: BufferLimits, private readonly sizeOf: (record: R) => number, private readonly overhead = 0) {}

  get(key: string): Readonly<PartitionState<R>> | undefined {
    return this.parts.get(key);
  }

  all(): ReadonlyArray<Readonly<PartitionState<R>>> {
    return [...this.parts.values()];
  }

  /** The actions decided since the last call, in order; the caller applies them to the consumer. */
  drain(): ConsumerAction[] {
    const out = this.actions;
    this.actions = [];
    return out;
  }

  isAssigned(topic: string, partition: number): boolean {
    return this.assignment.get(topic)?.has(partition) === true;
  }

  get readAheadBudget(): number {
    return Math.min(this.limits.readAheadBytes, this.limits.maxBufferedBytes / 2);
  }

  // ------------------------------------------------------------------ the group

  /**
   * The consumer joined the group: kafkajs restarts every partition from the group's
   * committed offsets, unpaused. Pause every assigned partition, then put back the ones
   * that want data, at the reader's positions.
   */
  joined(assignment: Readonly<Record<string, readonly number[]>>): void {
    this.assignment = new Map(Object.entries(assignment).map(([t, ps]) => [t, new Set(ps)]));
    for (const [topic, partitions] of Object.entries(assignment)) for (const partition of partitions) this.actions.push({ kind: 'pause', topic, partition });
    for (const st of this.parts.values()) {
      st.paused = true;
      st.seekPending = false;
      st.needsSeek = true;
      if (this.wantsData(st)) this.resume(st);
    }
  }

  /** The consumer is gone (reset): every partition seeks before it fetches again. */
  forgetConsumer(): void {
    this.assignment = new Map();
    for (const st of this.parts.values()) st.needsSeek = true;
  }

  // ------------------------------------------------------------------ reading a range

  /** Starts reading `r`: continues from the buffer when it covers r.from, else starts afresh (a seek). */
  activate(r: Range): void {
    const key = partitionKey(r);
    let st = this.parts.get(key);
    if (st && st.lo <= r.from && r.from <= st.position) {
      // Continue where the buffer is (steady state: r.from === st.lo, no seek).
      while (st.next < st.records.length && st.records[st.next]!.offset < r.from) {
        const b = this.footprint(st.records[st.next++]!);
        st.bytes -= b;
        this.bufferedBytes -= b;
        if (st.carried > 0) st.carried--;
      }
      st.lo = r.from;
      st.carried = st.records.length - st.next;
    } else {
      if (st) this.bufferedBytes -= st.bytes;
      st = {
        topic: r.topic, partition: r.partition, key, lo: r.from, position: r.from, records: [], next: 0, bytes: 0, carried: 0, until: undefined,
        seekPending: false, needsSeek: true, paused: true, memoryPaused: false, diverged: 0, progress: 0,
      };
      this.parts.set(key, st);
    }
    st.until = r.until;
    st.diverged = 0;
    if (this.wantsData(st)) this.resume(st);
  }

  /** `r` is the range being delivered now: it fetches whatever the memory bound says of the others. */
  deliver(r: Range): void {
    const st = this.mustGet(r);
    this.delivering = st.key;
    if (st.memoryPaused) {
      st.memoryPaused = false;
      if (this.wantsData(st)) this.resume(st);
    }
  }

  /**
   * Whether `r` is read completely: the position reached `until`. Only the position decides;
   * the reader asks BEFORE taking, since answers landing while a taken chunk is consumed may
   * move the position past `until` with records still buffered (a batch committed short;
   * test/kafka/slow-consumer.test.ts).
   */
  complete(r: Range): boolean {
    return this.mustGet(r).position >= r.until;
  }

  /** Takes the buffered records of `r`'s partition below `r.until`, in order, with their bytes. */
  take(r: Range): TakenRecords<R> {
    const st = this.mustGet(r);
    let end = st.next;
    while (end < st.records.length && st.records[end]!.offset < r.until) end++;
    if (end === st.next) return Object.assign([], { bytes: 0 });
    // All of the buffer (the steady state: the read keeps up with the fetches) is handed over, not copied.
    const whole = st.next === 0 && end === st.records.length;
    const out = whole ? st.records : st.records.slice(st.next, end);
    let bytes = 0;
    for (const rec of out) bytes += this.sizeOf(rec);
    const footprint = bytes + this.overhead * out.length;
    st.bytes -= footprint;
    this.bufferedBytes -= footprint;
    const fromBuffer = Math.min(st.carried, out.length);
    st.carried -= fromBuffer;
    this.counters.recordsFromBuffer += fromBuffer;
    st.next = end;
    st.lo = out[out.length - 1]!.offset + 1; // taken: a read of the same range again must not find them gone
    if (whole) {
      st.records = [];
      st.next = 0;
    } else if (st.next > 1024 && st.next * 2 > st.records.length) {
      st.records = st.records.slice(st.next);
      st.next = 0;
    }
    this.resumeAfterMemory();
    this.steerReadAhead();
    return Object.assign(out, { bytes });
  }

  /** `r` was read to its end: what is beyond `until` stays for the next batch. */
  finish(r: Range): void {
    const st = this.mustGet(r);
    const left = st.records[st.next];
    if (left !== undefined && left.offset < r.until) {
      throw new Error(`KafkaReader invariant broken: ${describeRange(r)} ended with offset ${left.offset} still unread (a bug: please report it)`);
    }
    st.lo = r.until;
    st.until = undefined;
    this.steer(st);
  }

  /** The read of `ranges` ended (done, failed or aborted): they read ahead as the budget allows. */
  release(ranges: readonly Range[]): void {
    for (const r of ranges) {
      const st = this.parts.get(partitionKey(r));
      if (!st) continue;
      st.until = undefined;
      st.memoryPaused = false;
      this.steer(st);
    }
    this.delivering = undefined;
  }

  // ------------------------------------------------------------------ fetched data

  /**
   * An answer of the consumer for one partition. An empty answer moves nothing: a broker also answers "nothing" for a partition
   * when the response's byte budget went to others (trusting it once lost records: a range
   * [18699, 24960) delivered only up to 19967; bench/results/2026-11-23-kafka-source-short-read.txt).
   */
  fetched(answer: FetchedAnswer<R>): FetchOutcome {
    const st = this.parts.get(`${answer.topic}/${answer.partition}`);
    if (!st) return 'ignored';
    if (answer.fetchedOffset !== st.position) {
      if (st.seekPending || st.needsSeek) return 'ignored'; // fetched before a seek: not ours
      st.diverged++;
      return 'diverged';
    }
    st.seekPending = false;
    st.progress++;
    if (answer.rawCount === 0) return 'empty';
    const before = st.records.length;
    for (const record of answer.records) {
      if (record.offset < st.position) continue;
      st.records.push(record);
      const bytes = this.footprint(record);
      st.bytes += bytes;
      this.bufferedBytes += bytes;
      this.counters.recordsFetched++;
      if (st.until === undefined) this.counters.recordsReadAhead++;
    }
    // The position moves by the offsets the answer covers, not by its records: markers,
    // aborted records and compacted tails end ranges too.
    st.position = Math.max(st.position + 1, answer.end);
    if (this.bufferedBytes > this.counters.peakBufferedBytes) this.counters.peakBufferedBytes = this.bufferedBytes;
    if (!this.wantsData(st)) this.pause(st);
    if (this.bufferedBytes >= this.readAheadBudget) this.steerReadAhead();
    if (this.bufferedBytes > this.limits.maxBufferedBytes) this.relieveMemory();
    return st.records.length > before ? 'arrived' : 'moved';
  }

  /** The consumer fetches elsewhere than the reader's position (diagnosed by the reader): seek it back, now or at the next join. */
  reseek(key: string, now: boolean): void {
    const st = this.parts.get(key);
    if (!st) return;
    st.diverged = 0;
    st.needsSeek = true;
    this.counters.reseeks++;
    if (now && this.wantsData(st)) this.resume(st); // else the seek waits for the resume
  }

  clear(): void {
    this.parts.clear();
    this.bufferedBytes = 0;
  }

  // ------------------------------------------------------------------ steering

  private wantsData(st: PartitionState<R>): boolean {
    if (st.memoryPaused) return false;
    if (st.until !== undefined && st.position < st.until) return true;
    // Past its range (or between batches): read ahead while there is room. Pausing a partition
    // as soon as it reached `until` paused them all by the end of every read, and kafkajs then
    // sleeps maxWaitTime before its next fetch: the next batch's read waited for that sleep.
    return this.bufferedBytes < this.readAheadBudget;
  }

  private steer(st: PartitionState<R>): void {
    if (this.wantsData(st)) this.resume(st);
    else this.pause(st);
  }

  /** Pauses the partitions reading ahead once the buffer is full, resumes them when it has room. */
  private steerReadAhead(): void {
    for (const st of this.parts.values()) if (st.paused === this.wantsData(st)) this.steer(st);
  }

  private resume(st: PartitionState<R>): void {
    if (!this.isAssigned(st.topic, st.partition)) return; // joined() resumes it
    if (st.needsSeek) {
      this.actions.push({ kind: 'seek', topic: st.topic, partition: st.partition, offset: st.position });
      st.needsSeek = false;
      st.seekPending = true;
      this.counters.seeks++;
    }
    if (st.paused) {
      this.actions.push({ kind: 'resume', topic: st.topic, partition: st.partition });
      st.paused = false;
    }
  }

  private pause(st: PartitionState<R>): void {
    if (st.paused) return;
    st.paused = true;
    this.actions.push({ kind: 'pause', topic: st.topic, partition: st.partition });
  }

  /**
   * Over the memory bound: pause every partition but the one being delivered that still
   * fetches its range, and drop what the others fetched beyond their range (a partition
   * whose range of this read is already fetched counts too: keeping its read-ahead let the
   * buffer exceed the bound by more than one answer; test/property/partition-buffer.property.test.ts).
   */
  private relieveMemory(): void {
    for (const st of this.parts.values()) {
      if (st.key === this.delivering) continue;
      if (st.until !== undefined && st.position < st.until) {
        if (!st.memoryPaused) {
          st.memoryPaused = true;
          this.counters.memoryPauses++;
          this.pause(st);
        }
      } else {
        this.dropAhead(st);
      }
      if (this.bufferedBytes <= this.limits.maxBufferedBytes) return;
    }
  }

  /** Drops the records beyond the partition's range (all untaken ones when it has none): fetched again later. */
  private dropAhead(st: PartitionState<R>): void {
    let keep = st.next;
    while (keep < st.records.length && st.records[keep]!.offset < (st.until ?? 0)) keep++;
    const first = st.records[keep];
    if (!first) return;
    let bytes = 0;
    for (let i = keep; i < st.records.length; i++) bytes += this.footprint(st.records[i]!);
    this.bufferedBytes -= bytes;
    st.bytes -= bytes;
    st.records = st.records.slice(st.next, keep);
    st.next = 0;
    st.carried = Math.min(st.carried, st.records.length);
    // Nothing visible lies between the kept records and the first dropped one: fetch again from there.
    st.position = Math.max(st.lo, first.offset);
    st.needsSeek = true;
  }

  private resumeAfterMemory(): void {
    if (this.bufferedBytes > this.limits.maxBufferedBytes / 2) return;
    for (const st of this.parts.values()) {
      if (!st.memoryPaused) continue;
      st.memoryPaused = false;
      if (this.wantsData(st)) this.resume(st);
    }
  }

  /** What a buffered record counts for against the memory bound. */
  private footprint(record: R): number {
    return this.sizeOf(record) + this.overhead;
  }

  private mustGet(r: Range): PartitionState<R> {
    const st = this.parts.get(partitionKey(r));
    if (!st) throw new Error(`KafkaReader invariant broken: ${describeRange(r)} is read without being activated (a bug: please report it)`);
    return st;
  }
}

export function describeRange(r: Range): string {
  return `${partitionKey(r)} [${r.from}, ${r.until})`;
}
