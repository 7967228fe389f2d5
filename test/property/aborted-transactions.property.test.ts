// read_committed against a model: interleaved transactions of several producers (begun
// and ended in any order, plain records between) are laid out as a broker would, read
// through fetches that start anywhere (inside transactions too) with the aborted list the
// broker returns for each (the transactions overlapping the fetched range, in the order
// they ended); the filter must show exactly the records that are not transactional or
// whose transaction committed.
import * as fc from 'fast-check';
import { visibleRecords, type FetchedRecord } from '../../src/kafka/aborted-transactions';
import { propertyParams } from './params';

type Op =
  | { readonly kind: 'send'; readonly producer: number; readonly records: number }
  | { readonly kind: 'plain'; readonly idempotent: boolean; readonly records: number }
  | { readonly kind: 'end'; readonly producer: number; readonly commit: boolean };

interface Msg extends FetchedRecord {
  readonly batchContext: NonNullable<FetchedRecord['batchContext']>;
}

interface Log {
  readonly batches: Msg[][];
  readonly end: number;
  /** Per offset of a data record: is it visible to read_committed? */
  readonly visible: Map<number, boolean>;
  /** Aborted transactions in the order their markers were written. */
  readonly aborted: Array<{ producerId: string; firstOffset: number; lastOffset: number }>;
}

const PRODUCERS = 4;
const pid = (p: number): string => String(1000 + p);

function buildLog(ops: readonly Op[], closing: readonly boolean[]): Log {
  const batches: Msg[][] = [];
  const visible = new Map<number, boolean>();
  const aborted: Log['aborted'] = [];
  const open = new Map<number, { first: number; offsets: number[] }>();
  let next = 0;
  const append = (records: number, ctx: Omit<Msg['batchContext'], 'firstOffset' | 'lastOffsetDelta'>, key?: Buffer): number[] => {
    const batchContext = { ...ctx, firstOffset: String(next), lastOffsetDelta: records - 1 };
    const batch = Array.from({ length: records }, (_, i) => ({ offset: String(next + i), key: key ?? null, batchContext }));
    batches.push(batch);
    next += records;
    return batch.map((m) => Number(m.offset));
  };
  const end = (producer: number, commit: boolean): void => {
    const txn = open.get(producer);
    if (!txn) return;
    open.delete(producer);
    const marker = Buffer.from([0, 0, 0, commit ? 1 : 0]);
    const [at] = append(1, { producerId: pid(producer), inTransaction: true, isControlBatch: true }, marker);
    for (const o of txn.offsets) visible.set(o, commit);
    if (!commit) aborted.push({ producerId: pid(producer), firstOffset: txn.first, lastOffset: at! });
  };
  for (const op of ops) {
    if (op.kind === 'plain') {
      for (const o of append(op.records, { producerId: op.idempotent ? '999' : '-1', inTransaction: false, isControlBatch: false })) visible.set(o, true);
    } else if (op.kind === 'send') {
      const offsets = append(op.records, { producerId: pid(op.producer), inTransaction: true, isControlBatch: false });
      const txn = open.get(op.producer) ?? { first: offsets[0]!, offsets: [] };
      txn.offsets.push(...offsets);
      open.set(op.producer, txn);
    } else {
      end(op.producer, op.commit);
    }
  }
  // read_committed reads up to the last stable offset: close what is still open
  [...open.keys()].forEach((p, i) => end(p, closing[i % Math.max(1, closing.length)] ?? true));
  return { batches, end: next, visible, aborted };
}

/** Reads the log from `start` through fetches of `sizes[i]` batches, as a consumer would. */
function readAll(log: Log, start: number, sizes: readonly number[], boundedList: readonly boolean[]): number[] {
  const seen: number[] = [];
  let at = start;
  for (let i = 0; at < log.end; i++) {
    // the broker answers from the batch that holds the fetch offset
    const first = log.batches.findIndex((b) => Number(b[b.length - 1]!.offset) >= at);
    const answer = log.batches.slice(first, first + sizes[i % sizes.length]!);
    const raw = answer.flat();
    const answerEnd = Number(raw[raw.length - 1]!.offset) + 1;
    // Kafka collects the aborted transactions with lastOffset >= fetch offset and
    // firstOffset < an upper bound: the end of what it read, or beyond it (the segment's end)
    const upper = boundedList[i % boundedList.length] ? answerEnd : log.end;
    const list = log.aborted.filter((t) => t.lastOffset >= at && t.firstOffset < upper)
      .map((t) => ({ producerId: t.producerId, firstOffset: String(t.firstOffset) }));
    for (const m of visibleRecords(raw, list, String(at))) seen.push(Number(m.offset));
    at = answerEnd;
  }
  return seen;
}

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('send' as const), producer: fc.nat(PRODUCERS - 1), records: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('plain' as const), idempotent: fc.boolean(), records: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('end' as const), producer: fc.nat(PRODUCERS - 1), commit: fc.boolean() }) },
);

describe('read_committed filter (src/kafka/aborted-transactions.ts)', () => {
  it('shows exactly the records that are not transactional or whose transaction committed, from any fetch offset and answer size', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 3 }),
        (ops, closing, startAt, sizes, boundedList) => {
          const log = buildLog(ops, closing);
          const start = Math.floor(startAt * log.end);
          const expected = [...log.visible].filter(([o, v]) => v && o >= start).map(([o]) => o).sort((a, b) => a - b);
          expect(readAll(log, start, sizes, boundedList)).toEqual(expected);
        },
      ),
      propertyParams(2_000),
    );
  });

  it('hides a transaction that began first and aborted last (the list is ordered by end, not by start)', () => {
    // p1 begins and sends (0), p2 begins and sends (1), p2 aborts (2), p1 aborts (3), a plain record (4)
    const log = buildLog([
      { kind: 'send', producer: 1, records: 1 }, { kind: 'send', producer: 2, records: 1 },
      { kind: 'end', producer: 2, commit: false }, { kind: 'end', producer: 1, commit: false },
      { kind: 'plain', idempotent: false, records: 1 },
    ], []);
    expect(log.aborted.map((t) => t.firstOffset)).toEqual([1, 0]);
    expect(readAll(log, 0, [10], [true])).toEqual([4]);
  });
});
