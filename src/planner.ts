// planRanges: the pure decision of what the next batch reads.
import { DataLossError } from '../recovery/errors';
import { SourceWentBackwardsError } from './errors';
import { parsePartitionKey, partitionKey, type OffsetMap, type Range } from '../checkpoint/model';

export interface PlanLimits {
  /** Records per partition per batch (Spark's maxRatePerPartition × interval). */
  readonly maxRecordsPerPartition: number;
  /** Estimated bytes per batch, over all partitions. */
  readonly maxBatchBytes: number;
  /** Fewer new records than this wait, up to maxWaitMs, so an idle stream does not spin. */
  readonly minRecords: number;
  readonly maxWaitMs: number;
}

export interface PlanInput {
  /** Committed positions. */
  readonly positions: OffsetMap;
  /** Start of partitions that have no position yet. */
  readonly starting: OffsetMap;
  readonly earliest: OffsetMap;
  /** The end of every partition to read now. */
  readonly latest: OffsetMap;
  readonly limits: PlanLimits;
  /** Estimated bytes per record, from earlier batches. */
  readonly avgRecordBytes: number;
  /** How long the job has waited for records since its last batch. */
  readonly waitedMs: number;
  readonly onDataLoss: 'fail' | 'skip';
  /** Records over all partitions (batch.targetMs: src/batch-size.ts); unset: only the limits. */
  readonly maxRecords?: number;
}

export type Plan =
  | { readonly kind: 'wait'; readonly available: number }
  | { readonly kind: 'batch'; readonly ranges: Range[]; readonly lost: Range[]; readonly records: number };

interface Candidate {
  readonly key: string;
  readonly from: number;
  readonly available: number;
  readonly pinned: boolean;
}

export function planRanges(input: PlanInput): Plan {
  const { limits } = input;
  const candidates: Candidate[] = [];
  const lost: Range[] = [];
  for (const key of Object.keys(input.latest).sort(comparePartitionKeys)) {
    const latest = input.latest[key]!;
    const known = input.positions[key];
    let from = known ?? input.starting[key] ?? input.earliest[key] ?? 0;
    const { topic, partition } = parsePartitionKey(key);
    if (known !== undefined && latest < known) throw new SourceWentBackwardsError(topic, partition, known, latest);
    if (known === undefined) from = Math.min(from, latest);
    const earliest = input.earliest[key] ?? 0;
    let pinned = known === undefined; // a new partition gets a (possibly empty) range to pin its start
    if (from < earliest) {
      lost.push({ topic, partition, from, until: earliest });
      from = earliest;
      pinned = true;
    }
    candidates.push({ key, from, available: Math.max(0, latest - from), pinned });
  }
  if (lost.length > 0 && input.onDataLoss === 'fail') throw new DataLossError(lost);

  const capped = candidates.map((c) => Math.min(c.available, limits.maxRecordsPerPartition));
  const wanted = capped.reduce((a, b) => a + b, 0);
  const budget = Math.max(1, Math.min(Math.floor(limits.maxBatchBytes / Math.max(1, input.avgRecordBytes)), input.maxRecords ?? Infinity));
  // Over budget: share it in proportion to each partition's backlog, at least one record each.
  const take = wanted <= budget ? capped : capped.map((n) => (n === 0 ? 0 : Math.max(1, Math.floor((n * budget) / wanted))));
  const records = take.reduce((a, b) => a + b, 0);
  const pinned = candidates.some((c) => c.pinned);

  if (!pinned && (records === 0 || (records < limits.minRecords && input.waitedMs < limits.maxWaitMs))) {
    return { kind: 'wait', available: records };
  }
  const ranges: Range[] = [];
  candidates.forEach((c, i) => {
    const n = take[i]!;
    if (n > 0 || c.pinned) {
      const { topic, partition } = parsePartitionKey(c.key);
      ranges.push({ topic, partition, from: c.from, until: c.from + n });
    }
  });
  return { kind: 'batch', ranges, lost, records };
}

/** Topic by name, then partition by number. */
export function comparePartitionKeys(a: string, b: string): number {
  const pa = parsePartitionKey(a);
  const pb = parsePartitionKey(b);
  return pa.topic < pb.topic ? -1 : pa.topic > pb.topic ? 1 : pa.partition - pb.partition;
}

/** The positions after a batch: each range's partition moves to its `until`. */
export function advancePositions(positions: OffsetMap, ranges: readonly Range[]): OffsetMap {
  const next: Record<string, number> = { ...positions };
  for (const r of ranges) next[partitionKey(r)] = r.until;
  return next;
}
