// What a bounded run may read: `--once` reads up to the source's ends at start; `--ranges`
// reads explicit ranges, checked here against the source and the checkpoint's positions.
import { BadConfigError } from '../checkpoint/errors';
import { isWholeNumber, partitionKey, type OffsetMap, type Range } from '../checkpoint/model';
import type { Source } from './contracts';

/** Up to `until` per partition and, for partitions new to the checkpoint, from `from`. */
export interface Bounds {
  readonly until: OffsetMap;
  readonly from?: OffsetMap;
}

function rangeProblem(r: Range): string | undefined {
  if (typeof r !== 'object' || r === null) return 'is not an object';
  if (typeof r.topic !== 'string' || r.topic === '') return 'needs a `topic` (a non-empty string)';
  for (const f of ['partition', 'from', 'until'] as const) {
    if (!isWholeNumber(r[f])) return `needs \`${f}\` (a whole number ≥ 0)`;
  }
  return r.from > r.until ? 'has `from` after `until`' : undefined;
}

/** Checks explicit ranges against the source and the positions; the partitions still to do, with their bounds. */
export async function rangeBounds(source: Source, positions: OffsetMap, ranges: readonly Range[]): Promise<Bounds> {
  const known = new Set((await source.partitions()).map(partitionKey));
  const until: Record<string, number> = {};
  const from: Record<string, number> = {};
  for (const r of ranges) {
    const problem = rangeProblem(r);
    if (problem) throw new BadConfigError(`Range ${JSON.stringify(r)} ${problem}.`);
    const key = partitionKey(r);
    if (!known.has(key)) throw new BadConfigError(`Range ${JSON.stringify(r)}: the source ${source.id} has no partition ${key}.`);
    if (key in until) throw new BadConfigError(`Two ranges for ${key}: give one range per partition.`);
    until[key] = r.until;
    from[key] = r.from;
  }
  const latest = await source.offsets(ranges.map((r) => ({ topic: r.topic, partition: r.partition })), 'latest');
  for (const r of ranges) {
    const key = partitionKey(r);
    const end = latest[key] ?? 0;
    if (r.until > end) throw new BadConfigError(`Range ${key} [${r.from}, ${r.until}) ends beyond the source, which ends at offset ${end}.`);
    const position = positions[key];
    if (position !== undefined && position < r.from) {
      throw new BadConfigError(
        `Range ${key} [${r.from}, ${r.until}) starts after the checkpoint's position ${position}: offsets [${position}, ${r.from}) would be skipped. ` +
        'Ranges continue a checkpoint without gaps; run a one-off job over ranges with a fresh --checkpoint directory.');
    }
    if (position !== undefined && position >= r.until) delete until[key]; // done already (the same ranges, run again)
  }
  return { until, from };
}
