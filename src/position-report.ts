// Tells the source the committed positions (Kafka: the group offsets lag tools read)
// without holding up the next batch: one report in flight, the newest positions win, and
// drain() waits for the last one. The checkpoint, not this, is the truth.
import type { OffsetMap } from '../checkpoint/model';
import type { Source } from './contracts';
import type { Logger } from './log';

export class PositionReporter {
  private next: { positions: OffsetMap; mark: string | undefined } | undefined;
  private reporting: Promise<void> | undefined;

  constructor(private readonly source: Source, private readonly log: Logger) {}

  report(positions?: OffsetMap, mark?: string): void {
    const source = this.source;
    if (positions) this.next = { positions, mark };
    const next = this.next;
    if (this.reporting || !next || !source.committed) return;
    this.next = undefined;
    this.reporting = (async () => {
      try {
        await source.committed!(next.positions, next.mark);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not report positions to the source (group offsets); the checkpoint is unaffected');
      }
    })().finally(() => {
      this.reporting = undefined;
      this.report(); // positions that came in meanwhile
    });
  }

  async drain(): Promise<void> {
    while (this.reporting) await this.reporting;
  }
}
