// Properties of the Kafka reader's pure state machine (src/kafka/partition-buffer.ts), driven
// without a broker: a simulated partition log (record batches with compacted records, whole
// batches compacted away, transaction markers and aborted records), a simulated consumer that
// applies the buffer's seek/pause/resume and answers fetches as kafkajs hands them over, and a
// read loop shaped like src/kafka/reader.ts. The schedule (which partition answers, how many
// batches, empty answers, stale duplicates, an answer in flight when a pause lands, group
// rejoins) comes from fast-check; once it is used up a fair schedule finishes the reads.
import * as fc from 'fast-check';
import { partitionKey, type Range } from '../../checkpoint/model';
import { PartitionBuffers, type ConsumerAction, type FetchedAnswer } from '../../src/kafka/partition-buffer';
import { propertyParams } from './params';

type Kind = 'record' | 'gone' | 'marker' | 'aborted';
interface Rec { readonly offset: number; readonly size: number }
/** What a buffered record costs the memory bound besides its size (the reader's object overhead). */
const OVERHEAD = 3;
interface Batch { readonly first: number; readonly last: number; readonly entries: ReadonlyArray<{ offset: number; kind: Exclude<Kind, 'gone'>; size: number }> }
interface Log { readonly batches: readonly Batch[]; readonly end: number; readonly visible: readonly Rec[] }

const TOPIC = 't';

/** A partition's log: batches of consecutive offsets; a batch whose every record was compacted away is gone. */
const logArb = fc.array(
  fc.array(fc.record({ kind: fc.constantFrom<Kind>('record', 'record', 'record', 'record', 'gone', 'gone', 'marker', 'aborted'), size: fc.integer({ min: 1, max: 400 }) }), { minLength: 1, maxLength: 5 }),
  { minLength: 1, maxLength: 25 },
).map((spec): Log => {
  // The active segment keeps its last batch whole: the log's last offset holds a record.
  const lastBatch = spec[spec.length - 1]!;
  lastBatch[lastBatch.length - 1] = { kind: 'record', size: lastBatch[lastBatch.length - 1]!.size };
  const batches: Batch[] = [];
  const visible: Rec[] = [];
  let offset = 0;
  for (const b of spec) {
    const first = offset;
    const entries: Array<Batch['entries'][number]> = [];
    for (const e of b) {
      if (e.kind !== 'gone') entries.push({ offset, kind: e.kind, size: e.size });
      if (e.kind === 'record') visible.push({ offset, size: e.size });
      offset++;
    }
    if (entries.length > 0) batches.push({ first, last: offset - 1, entries });
  }
  return { batches, end: offset, visible };
});

interface Step {
  readonly kind: 'answer' | 'empty' | 'duplicate' | 'inflight' | 'rejoin';
  readonly pick: number;
  readonly batches: number;
  /** kafkajs hands over records of the batch from before the fetch offset too. */
  readonly withEarlier: boolean;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<Step['kind']>('answer', 'answer', 'answer', 'answer', 'empty', 'duplicate', 'inflight', 'rejoin'),
  pick: fc.nat(100),
  batches: fc.integer({ min: 1, max: 3 }),
  withEarlier: fc.boolean(),
});

const scenarioArb = fc.record({
  logs: fc.array(logArb, { minLength: 1, maxLength: 3 }),
  /** Per partition, the cut points of the reads, in thousandths of the log (sorted). */
  cuts: fc.array(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 2, maxLength: 5 }), { minLength: 3, maxLength: 3 }),
  steps: fc.array(stepArb, { maxLength: 300 }),
  /** Read-ahead steps between two reads. */
  between: fc.integer({ min: 0, max: 8 }),
  maxBufferedBytes: fc.integer({ min: 200, max: 8_000 }),
  readAheadBytes: fc.integer({ min: 0, max: 6_000 }),
  /** The batch header's lastOffsetDelta is known (record format v2); false: only the last record's offset. */
  batchEnds: fc.boolean(),
});
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer S> ? S : never;

interface SimPartition {
  readonly key: string;
  readonly partition: number;
  readonly log: Log;
  /** Where the consumer fetches next. */
  at: number;
  paused: boolean;
  /** An answer already requested when the pause landed: the offset it was fetched at. */
  inflight: number | undefined;
  lastAnswer: FetchedAnswer<Rec> | undefined;
}

interface Observed {
  /** Records delivered per read and range. */
  readonly delivered: Rec[][];
  readonly ranges: Range[];
  /** Violations of the byte bound, as text. */
  readonly overBudget: string[];
  /** Ranges that completed while the position was below `until`. */
  readonly early: string[];
  /** Takes whose `bytes` are not the sum of their records' sizes, as text. */
  readonly miscounted: string[];
  /** Ranges whose read never completed. */
  readonly stalled: string[];
}

/** What the broker answers, and kafkajs hands the reader, for a fetch at `at`. */
function answerAt(p: SimPartition, at: number, count: number, withEarlier: boolean, batchEnds: boolean): { answer: FetchedAnswer<Rec>; next: number } {
  const batches = p.log.batches.filter((b) => b.last >= at).slice(0, count);
  const raw = batches.flatMap((b) => b.entries);
  if (raw.length === 0) return { answer: { topic: TOPIC, partition: p.partition, fetchedOffset: at, rawCount: 0, records: [], end: at }, next: at };
  const within = raw.filter((e) => e.offset >= at);
  // kafkajs's lastOffset(): the last record at or past the fetch offset, or the fetch offset when the batch's tail was compacted away.
  const lastOffset = within.length > 0 ? within[within.length - 1]!.offset : at;
  const records = raw.filter((e) => e.kind === 'record' && (withEarlier || e.offset >= at)).map((e) => ({ offset: e.offset, size: e.size }));
  const end = Math.max(lastOffset + 1, batchEnds ? batches[batches.length - 1]!.last + 1 : 0);
  return { answer: { topic: TOPIC, partition: p.partition, fetchedOffset: at, rawCount: raw.length, records, end }, next: lastOffset + 1 };
}

/** Bytes buffered beyond the ranges being read (all of them between reads). */
function aheadBytes(buffers: PartitionBuffers<Rec>): number {
  let n = 0;
  for (const st of buffers.all()) for (const x of st.records.slice(st.next)) if (x.offset >= (st.until ?? 0)) n += x.size + OVERHEAD;
  return n;
}

function readRanges(s: Scenario): Range[][] {
  const reads: Range[][] = [];
  const cutsOf = s.logs.map((log, i) => {
    return [...s.cuts[i]!].sort((a, b) => a - b).map((t) => Math.round((t * log.end) / 1000));
  });
  const count = Math.max(...cutsOf.map((c) => c.length)) - 1;
  for (let j = 0; j < count; j++) {
    const read: Range[] = [];
    s.logs.forEach((_, i) => {
      const c = cutsOf[i]!;
      const from = c[Math.min(j, c.length - 1)]!;
      const until = c[Math.min(j + 1, c.length - 1)]!;
      read.push({ topic: TOPIC, partition: i, from, until });
    });
    reads.push(read);
  }
  return reads;
}

/** Runs the reads of `s` through a PartitionBuffers and a simulated consumer. */
function simulate(s: Scenario): Observed {
  const buffers = new PartitionBuffers<Rec>({ maxBufferedBytes: s.maxBufferedBytes, readAheadBytes: s.readAheadBytes }, (r) => r.size, OVERHEAD);
  const parts: SimPartition[] = s.logs.map((log, i) => ({ key: partitionKey({ topic: TOPIC, partition: i }), partition: i, log, at: 0, paused: false, inflight: undefined, lastAnswer: undefined }));
  const byKey = new Map(parts.map((p) => [p.key, p]));
  const observed: Observed = { delivered: [], ranges: [], overBudget: [], early: [], miscounted: [], stalled: [] };
  let cursor = 0;
  let reading: Range | undefined;

  const apply = (actions: readonly ConsumerAction[]): void => {
    for (const a of actions) {
      const p = byKey.get(partitionKey(a))!;
      if (a.kind === 'seek') p.at = a.offset;
      else if (a.kind === 'pause') {
        if (!p.paused) p.inflight = p.at;
        p.paused = true;
      } else {
        p.paused = false;
        p.inflight = undefined;
      }
    }
  };
  const steer = (): void => apply(buffers.drain());

  const deliver = (p: SimPartition, answer: FetchedAnswer<Rec>, resumed: boolean): void => {
    p.lastAnswer = answer;
    const outcome = buffers.fetched(answer);
    steer();
    if (outcome === 'diverged') {
      buffers.reseek(p.key, true); // the reader's stall diagnosis
      steer();
    }
    // The byte bound: records fetched ahead (beyond the ranges of the read in progress, which
    // it needs whatever their size) stay within the read-ahead budget between reads and the
    // memory bound during one, but for the answer that crossed it.
    const bytes = answer.records.reduce((n, r) => n + r.size + OVERHEAD, 0);
    const bound = (reading ? Math.max(s.maxBufferedBytes, buffers.readAheadBudget) : buffers.readAheadBudget) + bytes;
    const ahead = aheadBytes(buffers);
    if (resumed && (outcome === 'arrived' || outcome === 'moved') && ahead > bound) {
      observed.overBudget.push(`${ahead} bytes fetched ahead > ${bound} after an answer of ${bytes} for ${p.key}${reading ? ` while reading ${partitionKey(reading)}` : ''}`);
    }
  };

  const fetchFor = (p: SimPartition, count: number, withEarlier: boolean): void => {
    const { answer, next } = answerAt(p, p.at, count, withEarlier, s.batchEnds);
    p.at = next;
    deliver(p, answer, true);
  };

  /** One step of the generated schedule; false when it is used up. */
  const step = (): boolean => {
    const st = s.steps[cursor++];
    if (!st) return false;
    const running = parts.filter((p) => !p.paused);
    switch (st.kind) {
      case 'answer': {
        const p = running[st.pick % Math.max(1, running.length)];
        if (p) fetchFor(p, st.batches, st.withEarlier);
        break;
      }
      case 'empty': {
        const p = running[st.pick % Math.max(1, running.length)];
        if (p) deliver(p, { topic: TOPIC, partition: p.partition, fetchedOffset: p.at, rawCount: 0, records: [], end: p.at }, true);
        break;
      }
      case 'duplicate': {
        const p = parts[st.pick % parts.length]!;
        if (p.lastAnswer) deliver(p, p.lastAnswer, false);
        break;
      }
      case 'inflight': {
        const p = parts.find((q) => q.inflight !== undefined);
        if (p) {
          const { answer } = answerAt(p, p.inflight!, st.batches, st.withEarlier, s.batchEnds);
          p.inflight = undefined;
          deliver(p, answer, false);
        }
        break;
      }
      case 'rejoin': {
        // kafkajs restarts every partition from the group's committed offsets (none: the earliest), unpaused.
        for (const p of parts) Object.assign(p, { at: 0, paused: false, inflight: undefined });
        buffers.joined({ [TOPIC]: parts.map((p) => p.partition) });
        steer();
        break;
      }
    }
    return true;
  };

  buffers.joined({ [TOPIC]: parts.map((p) => p.partition) });
  steer();
  for (const ranges of readRanges(s)) {
    for (let i = 0; i < s.between; i++) step();
    for (const r of ranges) buffers.activate(r);
    steer();
    for (const r of ranges.filter((x) => x.until > x.from)) {
      const got: Rec[] = [];
      observed.ranges.push(r);
      observed.delivered.push(got);
      reading = r;
      buffers.deliver(r);
      steer();
      let done = false;
      for (let spin = 0; spin < 20_000 && !done; spin++) {
        const complete = buffers.complete(r);
        if (complete && buffers.get(partitionKey(r))!.position < r.until) observed.early.push(partitionKey(r));
        const taken = buffers.take(r);
        const sizes = taken.reduce((n, x) => n + x.size, 0);
        if (taken.bytes !== sizes) observed.miscounted.push(`${partitionKey(r)}: ${taken.bytes} bytes taken for records of ${sizes}`);
        got.push(...taken);
        steer();
        if (complete) {
          done = true;
          break;
        }
        if (!step()) {
          // The schedule is used up: a fair consumer answers the partition being read.
          const p = byKey.get(partitionKey(r))!;
          if (p.paused) throw new Error(`${p.key} is paused while its range ${JSON.stringify(r)} is read`);
          fetchFor(p, 2, false);
        }
      }
      if (!done) observed.stalled.push(JSON.stringify(r));
      else buffers.finish(r);
      steer();
    }
    buffers.release(ranges);
    steer();
    reading = undefined;
  }
  return observed;
}

function expected(s: Scenario, r: Range): number[] {
  return s.logs[r.partition]!.visible.filter((v) => v.offset >= r.from && v.offset < r.until).map((v) => v.offset);
}

const params = propertyParams<[Scenario]>(300);

describe('the Kafka reader\'s partition buffer (no broker)', () => {
  it('delivers exactly the visible records of each range, in order, each once, with their bytes', () => {
    fc.assert(fc.property(scenarioArb, (s) => {
      const o = simulate(s);
      expect(o.stalled).toEqual([]);
      expect(o.miscounted).toEqual([]);
      o.ranges.forEach((r, i) => {
        expect({ range: r, offsets: o.delivered[i]!.map((x) => x.offset) }).toEqual({ range: r, offsets: expected(s, r) });
      });
    }), params);
  });

  it('completes a range only when the position reached until, never on an empty answer', () => {
    fc.assert(fc.property(scenarioArb, fc.integer({ min: 1, max: 5 }), (s, empties) => {
      expect(simulate(s).early).toEqual([]);
      // A range whose last offsets hold no visible record: only the position can end it. Empty
      // answers at the position, however many, never do; the answer covering until does.
      const log = s.logs[0]!;
      const buffers = new PartitionBuffers<Rec>({ maxBufferedBytes: 1e9, readAheadBytes: 0 }, (r) => r.size);
      const r: Range = { topic: TOPIC, partition: 0, from: 0, until: log.end };
      buffers.joined({ [TOPIC]: [0] });
      buffers.activate(r);
      buffers.deliver(r);
      const got: number[] = [];
      let at = 0;
      for (const b of log.batches) {
        for (let i = 0; i < empties; i++) {
          buffers.fetched({ topic: TOPIC, partition: 0, fetchedOffset: buffers.get('t/0')!.position, rawCount: 0, records: [], end: at });
          expect(buffers.complete(r)).toBe(false);
        }
        const fetchedOffset = buffers.get('t/0')!.position;
        const records = b.entries.filter((e) => e.kind === 'record').map((e) => ({ offset: e.offset, size: e.size }));
        buffers.fetched({ topic: TOPIC, partition: 0, fetchedOffset, rawCount: b.entries.length, records, end: b.last + 1 });
        at = b.last + 1;
        const complete = buffers.complete(r);
        got.push(...buffers.take(r).map((x) => x.offset));
        expect(complete).toBe(at >= log.end);
      }
      expect(got).toEqual(expected(s, r));
    }), propertyParams<[Scenario, number]>(200));
  });

  it('keeps the buffer within its byte budget but for the answer that crossed it', () => {
    fc.assert(fc.property(scenarioArb, (s) => {
      expect(simulate(s).overBudget).toEqual([]);
    }), propertyParams<[Scenario]>(1_500)); // more runs: an over-bound path needs a stale answer at the wrong moment
  });
});
