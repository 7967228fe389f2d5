// The one-line progress display of `tidemark run` on a terminal:
//
//   batch 42 · 12,340 records/s · 1,200,000 records · lag clicks 3,400, views 0
//
// On a terminal: redrawn in place after every batch and once a second (so lag stays fresh
// while the job idles). Log lines written meanwhile go through `around()`, which clears the
// line first and draws it again after, so logs and the display do not mangle each other.
// Elsewhere (`--progress always` into a file or a pipe): plain lines, no control codes, at
// most one a second and only after new batches, so a log file stays readable and small.
import { parsePartitionKey } from '../../checkpoint/model';
import type { BatchStats, EngineStatus } from '../engine';
import { plural } from './format';

const WINDOW_MS = 10_000;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Lag summed per topic, topics in name order. */
export function lagPerTopic(lag: Readonly<Record<string, number>>): Array<[string, number]> {
  const perTopic = new Map<string, number>();
  for (const [key, n] of Object.entries(lag)) {
    const { topic } = parsePartitionKey(key);
    perTopic.set(topic, (perTopic.get(topic) ?? 0) + n);
  }
  return [...perTopic].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export class Progress {
  private readonly recent: Array<{ at: number; records: number }> = [];
  private readonly started = Date.now();
  private total = 0;
  private batch: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private shown = false;
  private readonly tty: boolean;
  /** Off a terminal: when the last plain line was printed, and whether a batch came since. */
  private plainAt = 0;
  private plainDue = false;

  constructor(
    private readonly status: () => EngineStatus,
    private readonly out: NodeJS.WritableStream & { columns?: number; isTTY?: boolean } = process.stderr,
  ) {
    this.tty = out.isTTY === true;
  }

  start(): void {
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
  }

  onBatch(stats: BatchStats): void {
    const now = Date.now();
    this.total += stats.records;
    this.batch = stats.id;
    this.recent.push({ at: now, records: stats.records });
    this.plainDue = true;
    while (this.recent.length > 0 && this.recent[0]!.at < now - WINDOW_MS) this.recent.shift();
    this.draw();
  }

  /** The text of the line. */
  line(now = Date.now()): string {
    const span = Math.max(1, Math.min(WINDOW_MS, now - this.started)) / 1000;
    const rate = this.recent.filter((r) => r.at >= now - WINDOW_MS).reduce((a, r) => a + r.records, 0) / span;
    const status = this.status();
    const lag = lagPerTopic(status.lag);
    const batch = this.batch ?? status.lastCommitted;
    const state = !status.recovered ? 'recovering · ' : status.stopping ? 'stopping · '
      : lag.length === 0 ? 'waiting for the source · ' : ''; // no plan yet: a source connecting, or seeding (the demo)
    const caughtUp = lag.length > 0 && lag.every(([, n]) => n === 0) ? ' · caught up' : '';
    return `${state}batch ${batch} · ${fmt(rate)} records/s · ${plural(this.total, 'record')} · lag ${lag.length === 0 ? '—' : lag.map(([t, n]) => `${t} ${fmt(n)}`).join(', ')}${caughtUp}`;
  }

  draw(): void {
    if (!this.tty) {
      const now = Date.now();
      if (this.plainDue && now - this.plainAt >= 1000) this.plain(now);
      return;
    }
    const columns = this.out.columns;
    const width = columns !== undefined && columns > 20 ? columns - 1 : 160; // 0: a terminal of unknown size
    const text = this.line();
    this.out.write(`\r\x1b[K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
    this.shown = true;
  }

  private plain(now: number): void {
    this.out.write(`${this.line(now)}\n`);
    this.plainAt = now;
    this.plainDue = false;
  }

  clear(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }

  /** Writes something else to the terminal without mangling the line. */
  around(write: () => void): void {
    const was = this.shown;
    this.clear();
    write();
    if (was) this.draw();
  }

  /** Leaves the last state on screen, on its own line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.tty) return this.plain(Date.now());
    this.draw();
    this.out.write('\n');
    this.shown = false;
  }
}
