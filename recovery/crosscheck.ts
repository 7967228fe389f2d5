// crossCheck: has the checkpoint lost synced writes? A pure decision over what it holds and
// what it already told the outside.
//
// LevelDB drops the tail of a truncated write log with no report at all (found on
// 2026-11-29: a newest .log cut to half its length rolled batch 7 back to 6, exit 0, and the
// re-run rewrote a committed batch file with a second execution's outputs). Checksums cannot
// see records that are simply gone, but two witnesses outside the checkpoint can:
//
//   - the source's progress marks: after every COMMIT (synced) the Kafka source commits the
//     positions to the job's group with `tidemark:<checkpoint id>:<resets>:<batch id>` as
//     metadata. A mark of this checkpoint, with as many resets, naming a batch past the last
//     committed one, was written after a COMMIT the checkpoint no longer has;
//   - the sinks' ledgers (PostgreSQL, Kafka): a sink receives batch N only after STAGE N is
//     synced, so a ledger that holds N needs the checkpoint to have committed N, or to have
//     N staged in flight.
//
// A `tidemark reset` appends to the checkpoint's resets: marks written before it carry fewer
// and no longer count as lost work, but their batch ids were used: the next run starts its
// ids after them (idsUsedBeforeReset).
import type { CheckpointView, OffsetMap } from '../checkpoint/model';

const MARK = /^tidemark:([^:]+):(\d+):(\d+)$/;

/** What a source's progress report carries besides the positions. */
export interface ProgressMark {
  /** The checkpoint's id (meta.checkpointId). */
  readonly checkpoint: string;
  /** How many resets the checkpoint had recorded. */
  readonly resets: number;
  /** The batch whose COMMIT the positions are. */
  readonly batch: number;
}

export function formatMark(mark: ProgressMark): string {
  return `tidemark:${mark.checkpoint}:${mark.resets}:${mark.batch}`;
}

/** The mark in a metadata string; undefined for anything tidemark did not write. */
export function parseMark(metadata: string | null | undefined): ProgressMark | undefined {
  const m = MARK.exec(metadata ?? '');
  if (!m) return undefined;
  return { checkpoint: m[1]!, resets: Number(m[2]), batch: Number(m[3]) };
}

/** One partition's position as the source's outside record has it (Kafka: the group's committed offset and its metadata). */
export interface ReportedPosition {
  readonly partition: string;
  readonly offset: number;
  readonly metadata: string | null;
}

export interface CrossCheckInput {
  readonly dir: string;
  readonly view: CheckpointView;
  /** Where the source's record lives, for the message (e.g. `Kafka group orders-job`). */
  readonly reportedTo?: string;
  readonly reported: readonly ReportedPosition[];
  /** The last batch id each sink's ledger holds (sinks without a ledger are absent). */
  readonly delivered: Readonly<Record<string, number>>;
}

export interface LostWrites {
  /** What the checkpoint lost, naming both figures. */
  readonly detail: string;
  /** The positions the source's record holds (the way on for `tidemark reset --to`), when it is ahead. */
  readonly reportedPositions: OffsetMap | undefined;
}

/**
 * The highest batch id the source's marks name from before the checkpoint's last reset,
 * when it is past the last committed one: a checkpoint rolled back and then reset goes on
 * from there, since sinks keyed by batch id hold those ids already (a file sink would
 * overwrite them). Undefined otherwise.
 */
export function idsUsedBeforeReset(view: CheckpointView, reported: readonly ReportedPosition[]): number | undefined {
  const meta = view.meta;
  if (meta?.checkpointId === undefined || meta.resets.length === 0 || view.inFlight) return undefined;
  const used = reported.map((r) => parseMark(r.metadata))
    .filter((m): m is ProgressMark => m !== undefined && m.checkpoint === meta.checkpointId && m.resets < meta.resets.length)
    .map((m) => m.batch);
  const top = Math.max(0, ...used);
  return top > view.lastCommitted ? top : undefined;
}

/** Undefined when nothing outside is ahead of the checkpoint; else what it lost. */
export function crossCheck(input: CrossCheckInput): LostWrites | undefined {
  const { view } = input;
  const meta = view.meta;
  // A new checkpoint: a lost one is caught by openCheckpoint's marker file; a deliberately new
  // one beside an old ledger is the sink's SinkLedgerMismatchError (exit 4) at its first write.
  if (meta === undefined) return undefined;
  const findings: string[] = [];
  let reportedPositions: OffsetMap | undefined;

  if (meta.checkpointId !== undefined) {
    const ahead = input.reported.flatMap((r) => {
      const mark = parseMark(r.metadata);
      if (!mark || mark.checkpoint !== meta.checkpointId) return [];
      // More resets than the checkpoint has: it lost a reset, and whatever came after it.
      if (mark.resets > meta.resets.length || (mark.resets === meta.resets.length && mark.batch > view.lastCommitted)) return [{ ...r, mark }];
      return [];
    });
    if (ahead.length > 0) {
      const batch = Math.max(...ahead.map((a) => a.mark.batch));
      reportedPositions = Object.fromEntries(ahead.map((a) => [a.partition, a.offset]));
      const shown = ahead.map((a) => `${a.partition} ${a.offset} (checkpoint ${view.positions[a.partition] ?? 'none'})`).join(', ');
      findings.push(`${input.reportedTo ?? 'the source'} holds the positions of batch ${batch} of this checkpoint, committed after it: ${shown}; ` +
        `the checkpoint's last committed batch is ${view.lastCommitted}`);
    }
  }

  const inFlight = view.inFlight;
  // A staged batch may have reached a sink; with batches pipelined, any of those in flight.
  const staged = new Set(view.flight.filter((b) => b.state === 'staged').map((b) => b.id));
  for (const [sink, last] of Object.entries(input.delivered).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (last <= view.lastCommitted || staged.has(last)) continue;
    findings.push(`sink ${sink}'s ledger holds batch ${last}, delivered only after it was staged; the checkpoint's last committed batch is ${view.lastCommitted}` +
      `${inFlight ? `, batch ${inFlight.id} is ${inFlight.state}` : ', nothing in flight'}`);
  }

  if (findings.length === 0) return undefined;
  return {
    detail: `it lost synced writes, from a truncated write log or a restored older copy: ${findings.join('; ')}. ` +
      'Running on would process those batches a second time' +
      (reportedPositions ? `; to go on from where the source's record is, write ${JSON.stringify(reportedPositions)} to offsets.json and run tidemark reset ${input.dir} --to offsets.json --yes` : ''),
    reportedPositions,
  };
}
