// Group mode's pure decisions (docs/scale-out.md): what a partition's new owner does with
// what Kafka holds for it, and what a sink's per-partition ledger does with a write.
//
// The shared state lives in Kafka and in the sinks, never in a coordinator of ours:
//   - the job's consumer group commits, per partition, `offset` (everything before it is
//     delivered everywhere) and, as the commit's metadata, the planned range of the batch in
//     flight, written before that batch has any side effect (the write-ahead rule on the
//     shared log). The coordinator refuses the commit from a member of an older generation,
//     so a zombie cannot plan;
//   - each sink with a ledger keeps, per (job, sink, topic, partition), the end of the last
//     range it holds and the newest epoch (group generation) that claimed the partition. A
//     new owner claims every ledger before it writes; an older epoch is refused in the same
//     transaction as the rows it would have written, so a zombie cannot deliver.

/** A partition's batch in flight, as its owner wrote it into the group commit's metadata. */
export interface PlannedRange {
  readonly from: number;
  readonly until: number;
  /** The owner's epoch (the group generation it planned in). */
  readonly epoch: number;
  /** The owner's checkpoint id: the same daemon coming back may deliver what it staged. */
  readonly owner: string;
  /** The owner's batch id (for messages and inspect). */
  readonly batch: number;
}

/** What the group holds for a partition: its committed offset and the plan in its metadata. */
export interface GroupCommit {
  readonly offset: number;
  readonly planned?: PlannedRange;
}

const PLAN = /^tidemark-plan:v1:(\d+):(\d+):(\d+):([^:]+):(\d+)$/;

export function formatPlan(p: PlannedRange): string {
  return `tidemark-plan:v1:${p.from}:${p.until}:${p.epoch}:${p.owner}:${p.batch}`;
}

/** The plan in a commit's metadata; undefined for metadata tidemark's group mode did not write. */
export function parsePlan(metadata: string | null | undefined): PlannedRange | undefined {
  const m = PLAN.exec(metadata ?? '');
  if (!m) return undefined;
  return { from: Number(m[1]), until: Number(m[2]), epoch: Number(m[3]), owner: m[4]!, batch: Number(m[5]) };
}

/**
 * Where a newly assigned partition starts.
 *  - `start`: nothing committed for it; the source's `startingOffsets` decides.
 *  - `resume`: continue at `at` (no batch was in flight).
 *  - `rerun`: a batch was planned and not committed; its range is run again, exactly, first.
 *    `redeliverStaged` is true when this checkpoint is the one that planned it (a daemon
 *    restarted in place): its staged outputs, if it still has them, are delivered as they
 *    are, so a non-deterministic transform's outputs agree across sinks.
 */
export type Takeover =
  | { readonly kind: 'start' }
  | { readonly kind: 'resume'; readonly at: number }
  | { readonly kind: 'rerun'; readonly range: { readonly from: number; readonly until: number }; readonly redeliverStaged: boolean };

export function decideTakeover(commit: GroupCommit | undefined, checkpointId: string): Takeover {
  if (!commit) return { kind: 'start' };
  const p = commit.planned;
  // A plan is in flight only while the committed offset is its start: the commit that
  // finishes it moves the offset to `until` and drops the metadata.
  if (p && p.from === commit.offset && p.until > p.from) {
    return { kind: 'rerun', range: { from: p.from, until: p.until }, redeliverStaged: p.owner === checkpointId };
  }
  return { kind: 'resume', at: commit.offset };
}

/** A sink ledger's entry for one (job, sink, topic, partition). */
export interface LedgerEntry {
  /** The newest epoch that claimed the partition. */
  readonly epoch: number;
  /** The end of the last range delivered (undefined: claimed, nothing delivered yet). */
  readonly until?: number;
}

/**
 * What a ledger does with a write of [from, until) by an owner of `epoch`:
 *  - `fenced`: an owner of a newer epoch has claimed the partition; write nothing.
 *  - `duplicate`: the range is already delivered (a replay after a crash or a handoff);
 *    write nothing, report success.
 *  - `write`: write the rows and set the entry to { epoch, until }.
 *  - `gap`: the range does not continue the ledger (offsets would be skipped or overlap):
 *    a broken invariant, never written.
 */
export type LedgerVerdict = 'write' | 'duplicate' | 'fenced' | 'gap';

export function judgeLedgerWrite(entry: LedgerEntry | undefined, write: { readonly epoch: number; readonly from: number; readonly until: number }): LedgerVerdict {
  if (entry && write.epoch < entry.epoch) return 'fenced';
  if (entry?.until === undefined) return 'write';
  if (write.until <= entry.until && write.from < entry.until) return 'duplicate';
  return write.from === entry.until ? 'write' : 'gap';
}

/** A claim of the partition by an owner of `epoch`: the entry after it, or `fenced` when a newer owner claimed it. */
export function claimLedger(entry: LedgerEntry | undefined, epoch: number): LedgerEntry | 'fenced' {
  if (entry && epoch < entry.epoch) return 'fenced';
  return { ...entry, epoch };
}

/** The takeover as the daemon's log says it. */
export function describeTakeover(t: Takeover): string {
  switch (t.kind) {
    case 'start': return 'nothing committed: starting where the source says';
    case 'resume': return `resuming at ${t.at}`;
    case 'rerun': return `running [${t.range.from}, ${t.range.until}) again first (planned, not committed${t.redeliverStaged ? ', by this checkpoint' : ''})`;
  }
}
