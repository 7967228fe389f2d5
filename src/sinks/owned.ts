// Group mode (docs/scale-out.md): a write with `owner` is one partition's range by the owner
// of an epoch. The sinks that fence by partition read it here, checked once.
import { BadConfigError } from '../../checkpoint/errors';
import type { PartitionOwner, SinkBatch } from '../contracts';

export interface OwnedRange {
  readonly owner: PartitionOwner;
  readonly from: number;
  readonly until: number;
}

/** The batch's one range and its owner; a BadConfigError when `ranges` is not exactly the owner's partition. */
export function ownedRange(where: string, batch: SinkBatch<unknown>, owner: PartitionOwner): OwnedRange {
  const range = batch.ranges[0];
  if (batch.ranges.length !== 1 || range?.topic !== owner.topic || range.partition !== owner.partition) {
    throw new BadConfigError(`${where}: a group-mode write must hold exactly the range of ${owner.topic}/${owner.partition}; batch ${batch.id} holds ${JSON.stringify(batch.ranges)}.`);
  }
  return { owner, from: Number(range.from), until: Number(range.until) };
}
