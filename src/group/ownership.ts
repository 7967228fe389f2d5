// Which partitions a new join of the group keeps, adds and revokes for this daemon (pure).
//
// The group generation is the epoch. A partition this daemon held in generation g and is
// assigned again in g + 1, as the same member, was never anyone else's in between: it is
// kept, with the epoch it was taken at, and nothing is read again. In any other case (a
// generation skipped while this member was frozen or out of the group, a new member id) the
// partition may have had other owners: it is taken over anew from what the group holds.
import { parsePartitionKey, partitionKey, type PartitionRef } from '../../checkpoint/model';

export interface Membership {
  readonly generation: number;
  readonly memberId: string;
  readonly partitions: readonly PartitionRef[];
}

export interface AssignmentChange {
  /** Held, and assigned again in the very next generation: going on as they are. */
  readonly kept: readonly PartitionRef[];
  /** To take over from what the group holds (new to this daemon, or back after a gap). */
  readonly added: readonly PartitionRef[];
  /** Held, and no longer assigned. */
  readonly revoked: readonly PartitionRef[];
}

/** Whether `next` directly follows `prev` for this member (no generation in between). */
export function follows(prev: Membership | undefined, next: Membership): boolean {
  return prev !== undefined && next.generation === prev.generation + 1 && next.memberId === prev.memberId;
}

/** `held`: the partitions this daemon owns now (those of `prev` it has not dropped since). */
export function changeOf(prev: Membership | undefined, next: Membership, held: ReadonlySet<string>): AssignmentChange {
  const continues = follows(prev, next);
  const assigned = new Set(next.partitions.map(partitionKey));
  const kept: PartitionRef[] = [];
  const added: PartitionRef[] = [];
  for (const p of next.partitions) (continues && held.has(partitionKey(p)) ? kept : added).push(p);
  // A held partition assigned again after a gap is taken over anew (in `added`), not revoked.
  const revoked = [...held].filter((k) => !assigned.has(k)).map(parsePartitionKey);
  return { kept, added, revoked };
}
