// Group mode: the batches a checkpoint had in flight at start, held until the group's
// assignments say whether each is still this daemon's (docs/scale-out.md "Pipelining"). A batch
// is kept when the group asks this checkpoint to run exactly its range again (it planned it);
// the others are dropped with their staged outputs — those before the first kept one at
// once, those after it in their turn, once the flight before them has drained.
import { partitionKey, type BatchRecord, type PartitionRef } from '../../checkpoint/model';
import type { Takeover } from '../../recovery/handoff';
import type { Logger } from '../log';

export class StartFlight {
  /** The ids of batches that are the reruns the group asks of this checkpoint. */
  private readonly kept = new Set<number>();

  constructor(private readonly batches: BatchRecord[], private readonly log: Logger) {}

  get empty(): boolean {
    return this.batches.length === 0;
  }

  /** A new assignment: which batches are kept is decided again. */
  reassess(): void {
    this.kept.clear();
  }

  /** Keeps the batch that is the range `t` runs again on `p`; true when there is one. */
  keep(p: PartitionRef, t: Takeover): boolean {
    const b = this.batches.find((x) => {
      const r = x.ranges[0];
      return t.kind === 'rerun' && t.redeliverStaged && r !== undefined && partitionKey(r) === partitionKey(p) && r.from === t.range.from && r.until === t.range.until;
    });
    if (b) this.kept.add(b.id);
    return b !== undefined;
  }

  /** The batches before the first kept one (all of them when none is kept): not this daemon's, to drop now. */
  dropBeforeKept(): BatchRecord[] {
    const first = this.batches.findIndex((b) => this.kept.has(b.id));
    const dropped = this.batches.splice(0, first < 0 ? this.batches.length : first);
    for (const b of dropped) this.notOurs(b);
    return dropped;
  }

  /** The oldest batch left, taken out, and whether it is kept (else it is dropped in its turn). */
  next(): { readonly batch: BatchRecord; readonly kept: boolean } | undefined {
    const batch = this.batches.shift();
    if (!batch) return undefined;
    const kept = this.kept.has(batch.id);
    if (!kept) this.notOurs(batch);
    return { batch, kept };
  }

  /** Looks at the oldest batch left without taking it. */
  peekKept(): boolean | undefined {
    const b = this.batches[0];
    return b && this.kept.has(b.id);
  }

  private notOurs(b: BatchRecord): void {
    this.log.info({ batch: b.id, ranges: b.ranges }, `batch ${b.id} in flight at start is not this daemon's to finish (the group holds no such plan of it now): dropped, its staged outputs with it`);
  }
}
