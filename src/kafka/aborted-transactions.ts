// Which fetched records a read_committed consumer sees: the Java consumer's algorithm
// (CompletedFetch#nextFetchedRecord in org.apache.kafka.clients.consumer.internals).
//
// A fetch answer lists the aborted transactions that overlap the fetched range as
// (producerId, firstOffset), in the order they *ended* (the broker's transaction index
// is appended at each abort marker). kafkajs 2.2.4 (consumer/filterAbortedMessages.js)
// only ever looks at the head of that list and assumes it is sorted by firstOffset, so
// when a transaction begins after another and aborts before it, the first one's records
// come out as committed: a Java consumer shows none of them. The Java consumer orders the
// list by firstOffset (a PriorityQueue) and walks the batches in log order: a producer
// joins the aborted set once a batch reaches its transaction's first offset; its
// transactional batches are dropped while it is in the set; its abort marker takes it out.
// Transactions that began before the fetch offset still abort: their first offset is
// below every fetched batch, so the first batch with a producer id adds them.

/** One entry of a fetch answer's aborted transaction list. */
export interface AbortedTransaction {
  readonly producerId: string;
  readonly firstOffset: bigint;
}

/** What a control batch's first record says (its key: version int16, type int16). */
export type ControlType = 'abort' | 'commit' | 'unknown';

/** One record batch of a fetch answer, in log order. */
export interface TxnRecordBatch<R> {
  readonly lastOffset: bigint;
  /** '-1' when the batch has none (not written by an idempotent or transactional producer). */
  readonly producerId: string;
  readonly isTransactional: boolean;
  /** Set on control batches (transaction markers) only. */
  readonly control: ControlType | undefined;
  readonly records: readonly R[];
}

/** The records of `batches` a read_committed consumer returns; control records never. */
export function readCommitted<R>(aborted: readonly AbortedTransaction[], batches: Iterable<TxnRecordBatch<R>>): R[] {
  const pending = [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  let next = 0;
  const abortedProducers = new Set<string>();
  const out: R[] = [];
  for (const batch of batches) {
    if (!batch.producerId.startsWith('-')) {
      while (next < pending.length && pending[next]!.firstOffset <= batch.lastOffset) abortedProducers.add(pending[next++]!.producerId);
      if (batch.control === 'abort') abortedProducers.delete(batch.producerId);
      else if (batch.isTransactional && abortedProducers.has(batch.producerId)) continue;
    }
    if (batch.control !== undefined) continue;
    for (const r of batch.records) out.push(r);
  }
  return out;
}

/** A record as kafkajs 2.2.4 decodes it from a fetch answer (v2 record batches carry batchContext). */
export interface FetchedRecord {
  readonly offset: string;
  readonly key?: Buffer | null;
  readonly batchContext?: {
    readonly firstOffset: string;
    readonly lastOffsetDelta: number;
    readonly producerId: string;
    readonly inTransaction: boolean;
    readonly isControlBatch: boolean;
  };
}

/**
 * The records of one fetch answer that a read_committed consumer returns: `raw` is every
 * record kafkajs decoded for the partition (records of one batch share one batchContext
 * object), `aborted` the answer's list as kafkajs decodes it (empty under
 * read_uncommitted), and records before `fetchedOffset` are left out as the Java consumer
 * does.
 */
export function visibleRecords<M extends FetchedRecord>(
  raw: readonly M[],
  aborted: ReadonlyArray<{ readonly producerId: string; readonly firstOffset: string }>,
  fetchedOffset: string,
): M[] {
  const from = BigInt(fetchedOffset);
  const batches: Array<TxnRecordBatch<M>> = [];
  for (let i = 0; i < raw.length; ) {
    const ctx = raw[i]!.batchContext;
    let j = i + 1;
    while (ctx && j < raw.length && raw[j]!.batchContext === ctx) j++;
    const control = ctx?.isControlBatch ? controlType(raw[i]!.key) : undefined;
    // offsets rise through the answer: only its first batches can start before the fetch offset
    let k = i;
    while (k < j && BigInt(raw[k]!.offset) < from) k++;
    const records = raw.slice(k, j);
    batches.push(ctx
      ? { lastOffset: BigInt(ctx.firstOffset) + BigInt(ctx.lastOffsetDelta), producerId: ctx.producerId, isTransactional: ctx.inTransaction, control, records }
      : { lastOffset: BigInt(raw[i]!.offset), producerId: '-1', isTransactional: false, control, records }); // a pre-0.11 message: no transactions
    i = j;
  }
  return readCommitted(aborted.map((t) => ({ producerId: t.producerId, firstOffset: BigInt(t.firstOffset) })), batches);
}

function controlType(key: Buffer | null | undefined): ControlType {
  if (!key || key.length < 4) return 'unknown';
  const type = key.readInt16BE(2);
  return type === 0 ? 'abort' : type === 1 ? 'commit' : 'unknown';
}
